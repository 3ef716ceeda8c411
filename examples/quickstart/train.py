#!/usr/bin/env python3
"""Simulated training job for the Hyperion quickstart (standard library only).

This script does not train anything: it produces a deterministic, realistic-looking
validation-loss curve whose final value depends on the hyperparameters through a
formula with a KNOWN optimum, so you can check that a study finds it.

Known optimum: lr=1e-3, layers=4, optimizer=adam  ->  final val_loss ~= 0
(about 0.01 after the default 10 epochs; the floor of the curve is exactly 0).

Loss model:
    floor = 0.05 * (log10(lr) + 3)**2
          + 0.03 * abs(layers - 4)
          + (0.0 if optimizer == "adam" else 0.02 + 0.2 * abs(momentum - 0.9))
    val_loss(epoch) = floor + (2.0 - floor) * 0.6**(epoch + 1) + noise(params, epoch)
where noise is small (|noise| <= 0.004), decays with the epoch, and is derived from
a hash of the parameters: the same parameters always give the same curve.

Arguments (argparse; unknown arguments are an error):
    --lr FLOAT            learning rate (> 0)
    --layers INT          number of layers (>= 1)
    --optimizer adam|sgd
    --momentum FLOAT      required with sgd, rejected with adam (it is a
                          conditional parameter in study.yaml)
    --epochs INT          default 10

Hyperion protocol:
    * For each epoch, appends {"step": epoch, "val_loss": ...} as one JSON line to
      $HYPERION_METRICS_FILE (flushed), or, if that variable is not set, prints
      `HYPERION_METRIC {...}` on stdout.
    * If $HYPERION_CHECKPOINT_DIR is set, writes checkpoint.json there after each epoch.
    * Exit code 0 = completed; non-zero (e.g. 2 for bad arguments) = failed.
"""

import argparse
import hashlib
import json
import math
import os
import sys
import time


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Hyperion quickstart: simulated training curve.")
    parser.add_argument("--lr", type=float, required=True, help="learning rate (> 0)")
    parser.add_argument("--layers", type=int, required=True, help="number of layers (>= 1)")
    parser.add_argument("--optimizer", choices=["adam", "sgd"], required=True)
    parser.add_argument("--momentum", type=float, default=None, help="only with --optimizer=sgd")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args(argv)  # unknown arguments -> error, exit code 2

    if not (args.lr > 0 and math.isfinite(args.lr)):
        parser.error("--lr must be a finite number > 0")
    if args.layers < 1:
        parser.error("--layers must be >= 1")
    if args.epochs < 1:
        parser.error("--epochs must be >= 1")
    if args.optimizer == "sgd" and args.momentum is None:
        parser.error("--momentum is required with --optimizer=sgd")
    if args.optimizer == "adam" and args.momentum is not None:
        parser.error("--momentum is only valid with --optimizer=sgd (inactive conditional parameter)")
    if args.momentum is not None and not math.isfinite(args.momentum):
        parser.error("--momentum must be finite")
    return args


def loss_floor(lr, layers, optimizer, momentum):
    floor = 0.05 * (math.log10(lr) + 3.0) ** 2 + 0.03 * abs(layers - 4)
    if optimizer != "adam":
        floor += 0.02 + 0.2 * abs(momentum - 0.9)
    return floor


def noise(key, epoch):
    """Deterministic noise in [-0.004, 0.004] * decay, from a hash of the params and epoch."""
    digest = hashlib.sha256(f"{key}|{epoch}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64  # uniform in [0, 1)
    return (2.0 * u - 1.0) * 0.004 * (0.85 ** epoch)


def report(metrics_path, record):
    line = json.dumps(record)
    if metrics_path:
        with open(metrics_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
    else:
        print("HYPERION_METRIC " + line, flush=True)


def save_checkpoint(ckpt_dir, epoch, loss, params):
    os.makedirs(ckpt_dir, exist_ok=True)
    tmp = os.path.join(ckpt_dir, "checkpoint.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"epoch": epoch, "val_loss": loss, "params": params}, f)
    os.replace(tmp, os.path.join(ckpt_dir, "checkpoint.json"))  # atomic


def main(argv=None):
    args = parse_args(argv)
    params = {"lr": args.lr, "layers": args.layers, "optimizer": args.optimizer}
    if args.momentum is not None:
        params["momentum"] = args.momentum
    key = json.dumps(params, sort_keys=True)

    metrics_path = os.environ.get("HYPERION_METRICS_FILE")
    ckpt_dir = os.environ.get("HYPERION_CHECKPOINT_DIR")
    floor = loss_floor(args.lr, args.layers, args.optimizer, args.momentum)

    loss = None
    for epoch in range(args.epochs):
        time.sleep(0.02)  # pretend to work
        loss = floor + (2.0 - floor) * 0.6 ** (epoch + 1) + noise(key, epoch)
        loss = max(loss, 0.0)
        report(metrics_path, {"step": epoch, "val_loss": loss})
        if ckpt_dir:
            save_checkpoint(ckpt_dir, epoch, loss, params)

    print(f"done: {params} final val_loss={loss:.6f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
