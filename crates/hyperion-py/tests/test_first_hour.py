"""An Optuna user's first hour: Optuna's own examples, written the Optuna way, with only the
import changed (`import hyperion as optuna`)."""

import math

import hyperion as optuna


def test_quickstart_quadratic_finds_the_minimum():
    def objective(trial):
        x = trial.suggest_float("x", -10, 10)
        return (x - 2) ** 2

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=10))
    study.optimize(objective, n_trials=100)
    assert len(study.trials) == 100
    assert abs(study.best_params["x"] - 2) < 0.1
    assert study.best_value < 0.01
    assert study.best_trial.state == optuna.TrialState.COMPLETE


def test_pruning_with_report_and_should_prune_stops_bad_trials():
    def objective(trial):
        slope = trial.suggest_float("slope", 0.0, 1.0)
        value = 0.0
        for step in range(20):
            value = 1.0 - slope * step / 20
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    study = optuna.create_study(
        sampler=optuna.samplers.RandomSampler(seed=3),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2),
    )
    study.optimize(objective, n_trials=40)
    states = [t.state for t in study.trials]
    pruned = [t for t in study.trials if t.state == optuna.TrialState.PRUNED]
    assert states.count(optuna.TrialState.COMPLETE) >= 5
    assert len(pruned) >= 5, states
    # A pruned trial stopped at the step of the decision, with the pruner's reason.
    assert all(t.last_step < 19 for t in pruned)
    assert all("50th percentile" in t.pruned_reason for t in pruned)
    assert study.best_params["slope"] > 0.5


def test_a_conditional_space_suggests_only_the_active_parameters():
    def objective(trial):
        classifier = trial.suggest_categorical("classifier", ["SVC", "RandomForest"])
        if classifier == "SVC":
            c = trial.suggest_float("svc_c", 1e-10, 1e10, log=True)
            return abs(math.log10(c) - 2)
        depth = trial.suggest_int("rf_max_depth", 2, 32, log=True)
        return abs(depth - 8) / 8 + 0.5

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=5))
    study.optimize(objective, n_trials=80)
    for t in study.trials:
        names = set(t.params)
        assert names in ({"classifier", "svc_c"}, {"classifier", "rf_max_depth"}), names
    assert {t.params["classifier"] for t in study.trials} == {"SVC", "RandomForest"}
    assert study.best_value < 0.3


def test_multi_objective_keeps_a_pareto_front():
    def objective(trial):
        x = trial.suggest_float("x", 0, 5)
        y = trial.suggest_float("y", 0, 3)
        v0 = 4 * x**2 + 4 * y**2
        v1 = (x - 5) ** 2 + (y - 5) ** 2
        return v0, v1

    study = optuna.create_study(directions=["minimize", "minimize"], sampler=optuna.samplers.TPESampler(seed=7))
    study.optimize(objective, n_trials=60)
    front = study.best_trials
    assert 3 <= len(front) <= 60
    for a in front:
        for b in front:
            dominates = all(x <= y for x, y in zip(a.values, b.values)) and a.values != b.values
            assert not dominates, (a, b)
    assert study.directions == ["minimize", "minimize"]
