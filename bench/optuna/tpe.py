"""Optuna's side of `bench/run tpe`: TPE (default, multivariate) and TPE (independent) on the
same problems, seeds and budgets as hyperion-bench, and the cost of one suggestion against the
history size."""

import sys
import time

import optuna

from common import curve, emit
from problems import PROBLEMS, box

optuna.logging.set_verbosity(optuna.logging.WARNING)
quick = "--quick" in sys.argv
SEEDS, TRIALS = (5, 100) if quick else (20, 200)

SAMPLERS = {
    "optuna_tpe": lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=True),
    "optuna_tpe_independent": lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=False),
}


for name, dists, f in PROBLEMS:
    for sampler_name, make in SAMPLERS.items():
        for seed in range(SEEDS):
            c = curve(dists, f, make(seed), TRIALS)
            at = lambda n: c[n - 1] if n <= len(c) else None
            emit(impl="optuna", suite="tpe", problem=name, sampler=sampler_name, seed=seed,
                 regret_50=at(50), regret_100=at(100), regret_200=at(200))

# The cost of one suggestion against the history size (10-D floats, random history).
dists = box(10, -5, 5)
for size in ([100, 1000] if quick else [100, 1000, 10000]):
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1, multivariate=True))
    rng = optuna.samplers.RandomSampler(seed=1)
    import random
    r = random.Random(1)
    trials = []
    for _ in range(size):
        params = {k: r.uniform(-5, 5) for k in dists}
        trials.append(optuna.trial.create_trial(params=params, distributions=dists,
                                                value=sum(v * v for v in params.values())))
    study.add_trials(trials)
    reps = 20 if size < 10000 else 3
    started = time.perf_counter()
    for _ in range(reps):
        t = study.ask(dists)
        study.tell(t, state=optuna.trial.TrialState.FAIL)
    emit(impl="optuna", suite="tpe", history=size, ms_per_suggest=(time.perf_counter() - started) * 1e3 / reps)
