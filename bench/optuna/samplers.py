"""Optuna's side of `bench/run samplers`: CmaEsSampler (Optuna's defaults, its `cmaes` backend) on
the problems, seeds and budgets of hyperion-bench's samplers suite, and the time of a trial (ask,
the problem, tell on an in-memory study) over a whole run, the same loop on both sides; then
NSGAIISampler (defaults) on ZDT1-3 with 30 variables, each run's final Pareto front."""

import math
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


def zdt(problem, x):
    """ZDT1-3, as `zdt` in crates/hyperion-bench/src/samplers.rs."""
    g = 1 + 9 * sum(x[1:]) / (len(x) - 1)
    r = x[0] / g
    if problem == "zdt1":
        h = 1 - math.sqrt(r)
    elif problem == "zdt2":
        h = 1 - r * r
    else:
        h = 1 - math.sqrt(r) - r * math.sin(10 * math.pi * x[0])
    return x[0], g * h


ZDT_SEEDS, ZDT_TRIALS = (3, 2000) if quick else (10, 5000)
zdt_dists = {f"x{i:02}": optuna.distributions.FloatDistribution(0.0, 1.0) for i in range(30)}
for problem in ("zdt1", "zdt2", "zdt3"):
    for seed in range(ZDT_SEEDS):
        study = optuna.create_study(directions=["minimize", "minimize"], sampler=optuna.samplers.NSGAIISampler(seed=seed))
        started = time.perf_counter()
        for _ in range(ZDT_TRIALS):
            t = study.ask(zdt_dists)
            study.tell(t, zdt(problem, [t.params[k] for k in sorted(zdt_dists)]))
        ms = (time.perf_counter() - started) * 1e3 / ZDT_TRIALS
        front = [list(t.values) for t in study.best_trials]
        emit(impl="optuna", suite="samplers", sampler="optuna_nsga2", problem=problem, seed=seed,
             trials=ZDT_TRIALS, front=front, ms_per_trial=ms)
