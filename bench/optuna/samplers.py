"""Optuna's side of `bench/run samplers`: CmaEsSampler (Optuna's defaults, its `cmaes` backend) on
the problems, seeds and budgets of hyperion-bench's samplers suite, and the time of a trial (ask,
the problem, tell on an in-memory study) over a whole run, the same loop on both sides."""

import sys
import time

import optuna

from common import curve, emit
from problems import PROBLEMS

# Its warnings about sampling categoricals independently would drown the output.
optuna.logging.set_verbosity(optuna.logging.ERROR)
quick = "--quick" in sys.argv
SEEDS, TRIALS = (5, 300) if quick else (20, 1000)

for name, dists, f in PROBLEMS:
    for seed in range(SEEDS):
        started = time.perf_counter()
        c = curve(dists, f, optuna.samplers.CmaEsSampler(seed=seed), TRIALS)
        ms = (time.perf_counter() - started) * 1e3 / TRIALS
        at = lambda n: c[n - 1] if n <= len(c) else None
        emit(impl="optuna", suite="samplers", sampler="optuna_cmaes", problem=name, seed=seed,
             regret_100=at(100), regret_300=at(300), regret_1000=at(1000), ms_per_trial=ms)
