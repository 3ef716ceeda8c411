"""Helpers for a training script that Hyperion runs as a trial (`hyperion run`, a worker, a
Slurm job), or that a shell loop drives with `hyperion ask` / `report` / `tell`.

    import hyperion

    p = hyperion.params()
    for epoch in range(p["epochs"]):
        loss = train_one_epoch(lr=p["lr"])
        hyperion.report(step=epoch, loss=loss)
        if hyperion.should_stop():
            break

Under `hyperion run` a report is a line appended to `$HYPERION_METRICS_FILE`, which the run
reads as the trial goes; its early stopping ends the trial's process itself. Outside one, with
`HYPERION_STUDY` and `HYPERION_TRIAL_NUMBER` set (and `HYPERION_STORAGE` where the study is not
in the default store), a report is `hyperion report`, whose verdict `should_stop()` returns.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import shutil
import subprocess
import sysconfig
from pathlib import Path
from typing import Any, Dict, Optional

__all__ = ["checkpoint_dir", "params", "report", "restore_from", "should_stop"]

_stop_reason: Optional[str] = None


class NotATrialError(RuntimeError):
    """The helper was called outside a trial: the environment Hyperion gives a trial is absent."""


def _env(name: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise NotATrialError(
            f"${name} is not set: this process is not a trial started by `hyperion run` "
            "(see docs/trial-protocol.md)"
        )
    return value


def params() -> Dict[str, Any]:
    """The trial's parameters (`$HYPERION_PARAMS`), by name."""
    text = _env("HYPERION_PARAMS")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise NotATrialError(f"$HYPERION_PARAMS is not JSON: {e}") from None
    if not isinstance(value, dict):
        raise NotATrialError("$HYPERION_PARAMS is not a JSON object")
    return value


def checkpoint_dir() -> Path:
    """The directory to save the trial's checkpoints in (created)."""
    path = Path(_env("HYPERION_CHECKPOINT_DIR"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def restore_from() -> Optional[Path]:
    """For a population-based-training child: the copy of its parent's checkpoint directory to
    load before training on. None for every other trial."""
    value = os.environ.get("HYPERION_RESTORE_FROM")
    return Path(value) if value else None


def report(step: Optional[int] = None, **metrics: float) -> None:
    """Reports `metrics` (numbers by name: the objective's and any others) at `step`."""
    if step is not None and (not isinstance(step, numbers.Integral) or isinstance(step, bool) or step < 0):
        raise ValueError(f"report: step is {step!r}; give an int, 0 or more")
    if not metrics:
        raise ValueError("report: give at least one metric, as report(step=3, loss=0.25)")
    for name, value in metrics.items():
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise ValueError(f"report: metric {name!r} is {value!r}; metrics are numbers")
    record: Dict[str, Any] = {} if step is None else {"step": int(step)}
    record.update({name: float(value) for name, value in metrics.items()})
    metrics_file = os.environ.get("HYPERION_METRICS_FILE")
    if metrics_file:
        # One write of one line: a reader never sees half a record.
        line = json.dumps(record, allow_nan=True) + "\n"
        with open(metrics_file, "a", encoding="utf-8") as f:
            f.write(line)
        return
    _report_through_cli(record)


def should_stop() -> bool:
    """Whether the study's early stopping asked the trial to stop at its last report."""
    return _stop_reason is not None


def _hyperion_binary() -> str:
    beside = Path(sysconfig.get_path("scripts")) / "hyperion"
    if beside.exists():
        return str(beside)
    found = shutil.which("hyperion")
    if found is None:
        raise NotATrialError("the `hyperion` command is not installed beside this Python, nor on PATH")
    return found


def _report_through_cli(record: Dict[str, Any]) -> None:
    global _stop_reason
    study = _env("HYPERION_STUDY")
    number = _env("HYPERION_TRIAL_NUMBER")
    step = record.pop("step", None)
    if step is None:
        raise ValueError("report: give step= when reporting through `hyperion report`")
    metrics = {k: v for k, v in record.items() if math.isfinite(v)}
    command = [_hyperion_binary(), "report", "--study", study, "--trial", number, "--step", str(step)]
    command += ["--metrics", json.dumps(metrics)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode == 3:
        _stop_reason = done.stdout.strip().removeprefix("stop: ")
    elif done.returncode != 0:
        raise RuntimeError(f"hyperion report failed: {done.stderr.strip()}")
