"""Optuna's side of `bench/run pruning`: its Median, SuccessiveHalving and Hyperband pruners on
the simulated learning curves of crates/hyperion-bench/src/pruning.rs (same model, constants,
problems, budgets and seed count; random sampling), then the scikit-learn MLP sanity check."""

import math
import os
import sys
import time

import optuna
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState

from common import emit
from problems import PROBLEMS

optuna.logging.set_verbosity(optuna.logging.WARNING)
quick = "--quick" in sys.argv
SEEDS, TRIALS = (5, 30) if quick else (100, 60)
EPOCHS, START, NOISE, GRID = 27, 2.0, 0.02, 60
SCALES = {"hartmann6": 3.33, "branin": 310.0, "mixed": 60.0}


def train(loss, floor, rate):
    return floor + (loss - floor) * (1 - rate)


def optimum():
    best = math.inf
    for i in range(100_001):
        u = i / 100_000
        loss = START
        for _ in range(EPOCHS):
            loss = train(loss, 0.5 * (u - 0.5) ** 2, 0.05 + 0.25 * u)
        best = min(best, loss)
    return best


OPTIMUM = optimum()


def dynamics(f, scale, params):
    q = math.log1p(max(f(params), 0.0)) / math.log1p(scale)
    u = (math.log10(params["step_size"]) + 3) / 3
    return q + 0.5 * (u - 0.5) ** 2, 0.05 + 0.25 * u


PRUNERS = {
    "optuna_none": lambda: optuna.pruners.NopPruner(),
    "optuna_median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0),
    "optuna_sh": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
    "optuna_hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=EPOCHS,
                                                              reduction_factor=3),
}


def simulate(dists, f, scale, pruner, seed, budget):
    """Trials until `budget` epochs are spent; the regret at k / GRID of the budget."""
    import random
    noise = random.Random(seed)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed), pruner=pruner)
    epochs, best_observed, history = 0, math.inf, []
    while epochs < budget:
        trial = study.ask(dists)
        floor, rate = dynamics(f, scale, trial.params)
        loss, pruned = START, False
        for epoch in range(1, EPOCHS + 1):
            loss = train(loss, floor, rate)
            observed = loss + NOISE * noise.gauss(0, 1)
            epochs += 1
            trial.report(observed, epoch)
            if trial.should_prune():
                pruned = True
                break
        if pruned:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, observed)
            if observed < best_observed:
                best_observed = observed
                history.append((epochs, loss - OPTIMUM))
    grid = []
    for k in range(1, GRID + 1):
        spent = -(-k * budget // GRID)
        known = [r for e, r in history if e <= spent]
        grid.append(known[-1] if known else math.inf)
    return epochs, grid


for name, dists, f in PROBLEMS:
    if name not in SCALES:
        continue
    dists = dict(dists, step_size=FloatDistribution(1e-3, 1.0, log=True))
    budget = TRIALS * EPOCHS
    for strategy, make in PRUNERS.items():
        for seed in range(SEEDS):
            started = time.perf_counter()
            epochs, grid = simulate(dists, f, SCALES[name], make(), seed, budget)
            emit(impl="optuna", suite="pruning", problem=name, strategy=strategy, seed=seed, budget=budget,
                 epochs=epochs, seconds=time.perf_counter() - started,
                 regret=[r if math.isfinite(r) else None for r in grid])

# The sanity check: a real MLP (bench/mlp.py), without pruning and with SuccessiveHalving.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import mlp  # noqa: E402

n = 8 if quick else 20
MLP_DISTS = {"lr": FloatDistribution(1e-4, 1.0, log=True), "alpha": FloatDistribution(1e-6, 0.1, log=True),
             "hidden": IntDistribution(8, 128)}
for strategy, trials in [("optuna_none", n), ("optuna_sh", 2 * n)]:
    started = time.perf_counter()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), pruner=PRUNERS[strategy]())
    epochs, pruned = 0, 0
    for _ in range(trials):
        trial = study.ask(MLP_DISTS)
        state, last = None, None
        for epoch, loss in mlp.train(trial.params["lr"], trial.params["alpha"], trial.params["hidden"]):
            epochs += 1
            last = loss
            trial.report(loss, epoch)
            if trial.should_prune():
                state = TrialState.PRUNED
                break
        if state == TrialState.PRUNED:
            pruned += 1
            study.tell(trial, state=state)
        else:
            study.tell(trial, last)
    best = min((t.value for t in study.trials if t.state == TrialState.COMPLETE), default=None)
    emit(impl="optuna", suite="pruning", problem="mlp", strategy=strategy, trials=trials, pruned=pruned,
         epochs=epochs, best=best, seconds=time.perf_counter() - started)
