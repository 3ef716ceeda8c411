"""Samplers, named and called as Optuna's. Each stands for one of the engine's samplers; the
study records it, so `load_study` and the `hyperion` CLI reopen the study with the same one.

Arguments an Optuna sampler has and Hyperion's does not take raise a TypeError or ValueError
that says so; arguments left at None take Hyperion's defaults (see docs/python.md).
"""

from __future__ import annotations

import json
import numbers
from typing import Any, Dict, Mapping, Optional, Sequence

__all__ = ["BaseSampler", "CmaEsSampler", "GridSampler", "NSGAIISampler", "QMCSampler", "RandomSampler", "TPESampler"]


class BaseSampler:
    """A sampler's settings; `seed` seeds every random choice of the study."""

    seed: Optional[int]

    def __init__(self, seed: Optional[int] = None) -> None:
        if seed is not None and (not isinstance(seed, numbers.Integral) or seed < 0):
            raise ValueError(f"seed is {seed!r}; give an int, 0 or more")
        self.seed = None if seed is None else int(seed)

    def _settings(self) -> Dict[str, Any]:
        raise NotImplementedError

    def _hyperion_config(self) -> str:
        return json.dumps(self._settings())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed!r})"


def _unsupported(sampler: str, **given: Any) -> None:
    for name, value in given.items():
        if value is not None:
            raise ValueError(f"{sampler}: {name} is not supported by Hyperion (see docs/python.md)")


class RandomSampler(BaseSampler):
    """Independent uniform sampling (log-uniform for `log=True`)."""

    def _settings(self) -> Dict[str, Any]:
        return {"method": "random"}


class QMCSampler(BaseSampler):
    """Owen-scrambled Sobol points (Optuna's `QMCSampler(qmc_type="sobol", scramble=True)`)."""

    def __init__(self, *, qmc_type: str = "sobol", scramble: bool = True, seed: Optional[int] = None, **unsupported: Any) -> None:
        super().__init__(seed)
        if qmc_type != "sobol" or not scramble:
            raise ValueError("QMCSampler: Hyperion's is scrambled Sobol only (qmc_type='sobol', scramble=True)")
        _unsupported("QMCSampler", **unsupported)

    def _settings(self) -> Dict[str, Any]:
        return {"method": "sobol"}


class TPESampler(BaseSampler):
    """The Tree-structured Parzen Estimator. None leaves a setting at Hyperion's default:
    10 startup trials, 24 candidates, multivariate, constant liar, gamma 0.1."""

    def __init__(
        self,
        *,
        consider_prior: bool = True,
        prior_weight: Optional[float] = None,
        consider_magic_clip: Optional[bool] = None,
        consider_endpoints: Optional[bool] = None,
        n_startup_trials: Optional[int] = None,
        n_ei_candidates: Optional[int] = None,
        gamma: Optional[float] = None,
        seed: Optional[int] = None,
        multivariate: Optional[bool] = None,
        group: bool = False,
        constant_liar: Optional[bool] = None,
        warn_independent_sampling: bool = True,
        **unsupported: Any,
    ) -> None:
        super().__init__(seed)
        if not consider_prior:
            raise ValueError("TPESampler: consider_prior=False is not supported (the prior keeps TPE from collapsing)")
        if gamma is not None and not isinstance(gamma, numbers.Real):
            raise ValueError("TPESampler: gamma is a fraction in (0, 1] in Hyperion, not a function of n")
        _unsupported("TPESampler", **unsupported)
        del group, warn_independent_sampling  # Hyperion groups conditional parameters itself.
        given = {
            "startup_trials": n_startup_trials,
            "candidates": n_ei_candidates,
            "prior_weight": prior_weight,
            "multivariate": multivariate,
            "constant_liar": constant_liar,
            "magic_clip": consider_magic_clip,
            "consider_endpoints": consider_endpoints,
            "gamma": gamma,
        }
        self._tpe = {k: v for k, v in given.items() if v is not None}

    def _settings(self) -> Dict[str, Any]:
        return {"method": "tpe", **self._tpe}


class CmaEsSampler(BaseSampler):
    """CMA-ES over the numeric parameters, with IPOP restarts by default."""

    def __init__(
        self,
        *,
        sigma0: Optional[float] = None,
        seed: Optional[int] = None,
        restart_strategy: Optional[str] = None,
        popsize: Optional[int] = None,
        **unsupported: Any,
    ) -> None:
        super().__init__(seed)
        _unsupported("CmaEsSampler", **unsupported)
        given = {
            "sigma0": sigma0,
            "restart": restart_strategy,
            "popsize": popsize,
        }
        self._cmaes = {k: v for k, v in given.items() if v is not None}

    def _settings(self) -> Dict[str, Any]:
        return {"method": "cmaes", **self._cmaes}


class NSGAIISampler(BaseSampler):
    """NSGA-II: SBX crossover and polynomial mutation of numbers, uniform crossover of
    categoricals, parents by crowded tournament. None leaves a setting at its default
    (mutation_prob: 1 / the number of parameters)."""

    def __init__(
        self,
        *,
        population_size: int = 50,
        mutation_prob: Optional[float] = None,
        crossover: Any = None,
        crossover_prob: float = 0.9,
        swapping_prob: float = 0.5,
        seed: Optional[int] = None,
        **unsupported: Any,
    ) -> None:
        super().__init__(seed)
        if crossover is not None:
            raise ValueError("NSGAIISampler: crossover is SBX for numbers and uniform for categoricals; it cannot be changed")
        if swapping_prob != 0.5:
            raise ValueError("NSGAIISampler: swapping_prob is 0.5 in Hyperion")
        _unsupported("NSGAIISampler", **unsupported)
        given = {"population_size": population_size, "mutation_prob": mutation_prob, "crossover_prob": crossover_prob}
        self._nsga2 = {k: v for k, v in given.items() if v is not None}

    def _settings(self) -> Dict[str, Any]:
        return {"method": "nsga2", **self._nsga2}


class GridSampler(BaseSampler):
    """Every combination of `search_space`'s values, each once; `optimize` ends when all ran."""

    def __init__(self, search_space: Mapping[str, Sequence[Any]], seed: Optional[int] = None) -> None:
        super().__init__(seed)
        if not isinstance(search_space, Mapping) or not search_space:
            raise ValueError("GridSampler: search_space is a dict of parameter name to its values")
        self._values = {}
        for name, values in search_space.items():
            values = list(values)
            if not values:
                raise ValueError(f"GridSampler: parameter {name!r} has no values")
            self._values[str(name)] = values

    def _settings(self) -> Dict[str, Any]:
        return {"method": "grid", "values": self._values}
