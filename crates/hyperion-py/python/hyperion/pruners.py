"""Pruners, named and called as Optuna's: each is one of the engine's early-stopping rules
(`early_stopping:` in a study file), recorded with the study. Their decisions, with the reason,
go to the study's decision log (`hyperion decisions STUDY`).
"""

from __future__ import annotations

import json
import numbers
from typing import Any, Dict, Optional, Union

__all__ = [
    "BasePruner",
    "HyperbandPruner",
    "MedianPruner",
    "NopPruner",
    "PercentilePruner",
    "SuccessiveHalvingPruner",
]


class BasePruner:
    def _settings(self) -> Dict[str, Any]:
        raise NotImplementedError

    def _hyperion_config(self) -> str:
        return json.dumps(self._settings())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._settings()!r})"


def _count(pruner: str, name: str, value: Any, least: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < least:
        raise ValueError(f"{pruner}: {name} is {value!r}; give an int, {least} or more")
    return int(value)


class NopPruner(BasePruner):
    """Never prunes."""

    def _settings(self) -> Dict[str, Any]:
        return {"type": "none"}


class PercentilePruner(BasePruner):
    """Prunes a trial whose best value so far is worse than `percentile` of the completed
    trials' values at the same step."""

    def __init__(
        self,
        percentile: float,
        n_startup_trials: int = 5,
        n_warmup_steps: int = 0,
        interval_steps: int = 1,
        *,
        n_min_trials: int = 1,
    ) -> None:
        name = type(self).__name__
        if not isinstance(percentile, numbers.Real) or not 0 <= percentile <= 100:
            raise ValueError(f"{name}: percentile is {percentile!r}; give a number from 0 to 100")
        self._rule = {
            "percentile": float(percentile),
            "n_startup_trials": _count(name, "n_startup_trials", n_startup_trials, 0),
            "n_warmup_steps": _count(name, "n_warmup_steps", n_warmup_steps, 0),
            "interval_steps": _count(name, "interval_steps", interval_steps, 1),
            "n_min_trials": _count(name, "n_min_trials", n_min_trials, 1),
        }

    def _settings(self) -> Dict[str, Any]:
        return {"type": "percentile", **self._rule}


class MedianPruner(PercentilePruner):
    """Prunes a trial whose best value so far is worse than the median of the completed trials
    at the same step."""

    def __init__(
        self,
        n_startup_trials: int = 5,
        n_warmup_steps: int = 0,
        interval_steps: int = 1,
        *,
        n_min_trials: int = 1,
    ) -> None:
        super().__init__(50.0, n_startup_trials, n_warmup_steps, interval_steps, n_min_trials=n_min_trials)

    def _settings(self) -> Dict[str, Any]:
        rule = dict(self._rule)
        del rule["percentile"]
        return {"type": "median", **rule}


class SuccessiveHalvingPruner(BasePruner):
    """Asynchronous successive halving (ASHA): at each rung, only the best 1/`reduction_factor`
    of the trials that reached it go on. `min_resource="auto"` is 1."""

    def __init__(
        self,
        min_resource: Union[str, int] = "auto",
        reduction_factor: int = 4,
        min_early_stopping_rate: int = 0,
        bootstrap_count: int = 0,
    ) -> None:
        name = type(self).__name__
        if bootstrap_count != 0:
            raise ValueError(f"{name}: bootstrap_count is not supported by Hyperion")
        min_resource = 1 if min_resource == "auto" else _count(name, "min_resource", min_resource, 1)
        reduction_factor = _count(name, "reduction_factor", reduction_factor, 2)
        rate = _count(name, "min_early_stopping_rate", min_early_stopping_rate, 0)
        # Optuna's first rung is at min_resource · reduction_factor ** min_early_stopping_rate.
        self._rule = {"min_resource": min_resource * reduction_factor**rate, "reduction_factor": reduction_factor}

    def _settings(self) -> Dict[str, Any]:
        return {"type": "asha", **self._rule}


class HyperbandPruner(BasePruner):
    """Hyperband: brackets of successive halving from `min_resource` to `max_resource` steps.
    `max_resource` must be given (Optuna's "auto" guesses it from the first trial)."""

    def __init__(
        self,
        min_resource: int = 1,
        max_resource: Union[str, int] = "auto",
        reduction_factor: int = 3,
        bootstrap_count: int = 0,
    ) -> None:
        name = type(self).__name__
        if max_resource == "auto":
            raise ValueError(f"{name}: give max_resource, the most steps a trial reports (\"auto\" is not supported)")
        if bootstrap_count != 0:
            raise ValueError(f"{name}: bootstrap_count is not supported by Hyperion")
        self._rule: Dict[str, Optional[int]] = {
            "min_resource": _count(name, "min_resource", min_resource, 1),
            "max_resource": _count(name, "max_resource", max_resource, 1),
            "reduction_factor": _count(name, "reduction_factor", reduction_factor, 2),
        }

    def _settings(self) -> Dict[str, Any]:
        return {"type": "hyperband", **self._rule}
