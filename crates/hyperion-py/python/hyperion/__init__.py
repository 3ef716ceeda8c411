"""Hyperion: hyperparameter optimization on a Rust engine, with Optuna's API.

    import hyperion

    def objective(trial):
        x = trial.suggest_float("x", -10, 10)
        return (x - 2) ** 2

    study = hyperion.create_study()
    study.optimize(objective, n_trials=100)
    print(study.best_params)

Scripts that `hyperion run` starts use `hyperion.params()`, `hyperion.report(...)` and the other
trial-script helpers instead. See docs/python.md.
"""

from hyperion import pruners, samplers
from hyperion._native import (
    DuplicatedStudyError,
    FrozenTrial,
    HyperionError,
    StorageError,
    Study,
    Trial,
    TrialPruned,
    TrialState,
    create_study,
    delete_study,
    get_all_study_names,
    load_study,
)
from hyperion._script import checkpoint_dir, params, report, restore_from, should_stop

__all__ = [
    "DuplicatedStudyError",
    "FrozenTrial",
    "HyperionError",
    "StorageError",
    "Study",
    "Trial",
    "TrialPruned",
    "TrialState",
    "checkpoint_dir",
    "create_study",
    "delete_study",
    "get_all_study_names",
    "load_study",
    "params",
    "pruners",
    "report",
    "restore_from",
    "samplers",
    "should_stop",
]
