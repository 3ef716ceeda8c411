"""bench/run python: the same Python objective (a sum of squares over 10 floats) through the
`hyperion` package and through Optuna 5.0, in one process, in the same run: ask/tell and
`optimize`, random and TPE, in memory and on SQLite. Prints a table of trials per second and
their ratio, the best value each side found, then one JSON line of headline figures.

Each cell runs its study once per side, alternating sides, on a fresh study (a tmpfs file for
SQLite where /dev/shm exists, as BASELINES.md measured Optuna's SQLite)."""

import json
import os
import sys
import tempfile
import time

import optuna

import hyperion

optuna.logging.set_verbosity(optuna.logging.WARNING)
QUICK = "--quick" in sys.argv
TRIALS = 200 if QUICK else 1000
DIMS = 10


def objective(trial):
    return sum(trial.suggest_float(f"x{i}", -5.0, 5.0) ** 2 for i in range(DIMS))


def sampler(lib, method, seed):
    if method == "tpe":
        return lib.samplers.TPESampler(seed=seed)
    return lib.samplers.RandomSampler(seed=seed)


def storage(kind, directory, name):
    if kind == "memory":
        return None
    return f"sqlite:///{os.path.join(directory, name + '.db')}"


def measure(lib, method, kind, api, trials, directory, seed):
    name = f"{lib.__name__}-{method}-{kind}-{api}-{seed}"
    study = lib.create_study(study_name=name, storage=storage(kind, directory, name), sampler=sampler(lib, method, seed))
    started = time.perf_counter()
    if api == "optimize":
        study.optimize(objective, n_trials=trials)
    else:
        for _ in range(trials):
            trial = study.ask()
            study.tell(trial, objective(trial))
    elapsed = time.perf_counter() - started
    assert len(study.trials) == trials
    return trials / elapsed, study.best_value


def main():
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    cells = []
    with tempfile.TemporaryDirectory(dir=base) as directory:
        for method in ("random", "tpe"):
            for kind in ("memory", "sqlite"):
                for api in ("ask_tell", "optimize"):
                    # Optuna's TPE on SQLite is the slow corner: a fifth of the trials there.
                    trials = TRIALS // 5 if (method, kind) == ("tpe", "sqlite") else TRIALS
                    h, h_best = measure(hyperion, method, kind, api, trials, directory, 1)
                    o, o_best = measure(optuna, method, kind, api, trials, directory, 1)
                    cells.append({"method": method, "storage": kind, "api": api, "trials": trials, "hyperion": h, "optuna": o, "ratio": h / o,
                                  "hyperion_best": h_best, "optuna_best": o_best})
                    print(f"{method:6} {kind:6} {api:8} {trials:5} trials  hyperion {h:9.1f}/s  optuna {o:7.1f}/s  ratio {h / o:7.1f}"
                          f"  best {h_best:7.3f} vs {o_best:7.3f}", flush=True)

    def ratio(method, kind, api="optimize"):
        return next(c["ratio"] for c in cells if (c["method"], c["storage"], c["api"]) == (method, kind, api))

    summary = {
        "suite": "python",
        "trials": TRIALS,
        "ratio_tpe_1k": ratio("tpe", "memory"),
        "ratio_random_memory": ratio("random", "memory"),
        "ratio_sqlite": ratio("random", "sqlite"),
        "ratio_tpe_sqlite": ratio("tpe", "sqlite"),
        "ratio_tpe_1k_ask_tell": ratio("tpe", "memory", "ask_tell"),
        "cells": cells,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
