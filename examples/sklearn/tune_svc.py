#!/usr/bin/env python3
"""Hyperion example: tune an SVC on scikit-learn's bundled digits dataset.

Parameters (argparse; unknown arguments are an error):
    --C FLOAT         regularization strength (> 0)
    --gamma FLOAT     kernel coefficient (> 0)
    --kernel rbf|poly

Objective: mean 3-fold cross-validated accuracy (cross_val_score, n_jobs=1),
reported once as {"step": 0, "accuracy": ...}, appended as a JSON line to
$HYPERION_METRICS_FILE, or printed as `HYPERION_METRIC {...}` on stdout when that
variable is not set. The dataset ships with scikit-learn: nothing is downloaded.
"""

import argparse
import json
import math
import os
import sys

from sklearn.datasets import load_digits
from sklearn.model_selection import cross_val_score
from sklearn.svm import SVC


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Tune an SVC on the digits dataset.")
    parser.add_argument("--C", type=float, required=True)
    parser.add_argument("--gamma", type=float, required=True)
    parser.add_argument("--kernel", choices=["rbf", "poly"], required=True)
    args = parser.parse_args(argv)
    for name in ("C", "gamma"):
        value = getattr(args, name)
        if not (value > 0 and math.isfinite(value)):
            parser.error(f"--{name} must be a finite number > 0")
    return args


def report(record):
    line = json.dumps(record)
    path = os.environ.get("HYPERION_METRICS_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
    else:
        print("HYPERION_METRIC " + line, flush=True)


def main(argv=None):
    args = parse_args(argv)
    X, y = load_digits(return_X_y=True)
    model = SVC(C=args.C, gamma=args.gamma, kernel=args.kernel)
    scores = cross_val_score(model, X, y, cv=3, n_jobs=1)
    accuracy = float(scores.mean())
    report({"step": 0, "accuracy": accuracy})
    print(f"C={args.C} gamma={args.gamma} kernel={args.kernel} "
          f"cv accuracy={accuracy:.4f} (folds: {', '.join(f'{s:.4f}' for s in scores)})",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
