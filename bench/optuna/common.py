"""What the Optuna peers share: the same 10-D space and objective as hyperion-bench."""

import json
import time

import optuna
from optuna.distributions import FloatDistribution

optuna.logging.set_verbosity(optuna.logging.WARNING)

# Ten floats in [-5, 5], as `space()` in crates/hyperion-bench.
DISTRIBUTIONS = {f"x{i}": FloatDistribution(-5.0, 5.0) for i in range(10)}


def objective(params):
    return sum(x * x for x in params.values())


def curve(dists, f, sampler, trials):
    """The best regret so far after each of `trials` ask+tell cycles of `sampler` on `f`."""
    study = optuna.create_study(sampler=sampler)
    best, out = float("inf"), []
    for _ in range(trials):
        t = study.ask(dists)
        v = max(f(t.params), 0.0)
        study.tell(t, v)
        best = min(best, v)
        out.append(best)
    return out


def cycle(study):
    """One ask+tell with fixed distributions: Optuna's fastest ask/tell path."""
    trial = study.ask(DISTRIBUTIONS)
    study.tell(trial, objective(trial.params))


def cycles(study, checkpoints, suite, **extra):
    """Runs cycles from an empty study; at each checkpoint N prints the rate over the cycles
    in [0.9 N, N), as hyperion-bench does."""
    start = None
    for i in range(checkpoints[-1]):
        for n in checkpoints:
            if i == n - n // 10:
                start = time.perf_counter()
        cycle(study)
        if i + 1 in checkpoints:
            n = i + 1
            seconds = time.perf_counter() - start
            emit(impl="optuna", suite=suite, trials=n, cycles=n // 10, seconds=seconds,
                 per_s=(n // 10) / seconds, **extra)


def emit(**fields):
    print(json.dumps(fields), flush=True)
