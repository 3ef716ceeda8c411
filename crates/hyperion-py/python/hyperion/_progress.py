"""`optimize(show_progress_bar=True)`: a tqdm bar when tqdm is installed, else a line per trial
on stderr."""

from __future__ import annotations

import sys
from typing import Any, Optional


class ProgressBar:
    def __init__(self, n_trials: Optional[int], timeout: Optional[float]) -> None:
        self._n = 0
        self._total = n_trials
        try:
            from tqdm.auto import tqdm
        except ImportError:
            self._bar = None
        else:
            self._bar = tqdm(total=n_trials)

    def __call__(self, study: Any, trial: Any) -> None:
        self._n += 1
        best = ""
        if len(study.directions) == 1:
            try:
                best = f" best value {study.best_value:.6g}"
            except ValueError:
                pass
        if self._bar is not None:
            self._bar.set_description(f"trial {trial.number}{best}")
            self._bar.update(1)
        else:
            total = f"/{self._total}" if self._total else ""
            print(f"[{self._n}{total}] trial {trial.number} {trial.state.name}{best}", file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
