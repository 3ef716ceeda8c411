"""`Study.trials_dataframe`: the trials as a pandas DataFrame with Optuna's columns."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

_DEFAULT = ("number", "value", "datetime_start", "datetime_complete", "duration", "params", "user_attrs", "state")


def trials_dataframe(study: Any, attrs: Optional[Sequence[str]] = None, multi_index: bool = False) -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("trials_dataframe needs pandas: pip install pandas") from None
    attrs = tuple(attrs) if attrs is not None else _DEFAULT
    several = len(study.directions) > 1
    rows: List[Dict[Any, Any]] = []
    for t in study.trials:
        row: Dict[Any, Any] = {}
        for attr in attrs:
            if attr == "value" and several or attr == "values":
                for i, v in enumerate(t.values or [None] * len(study.directions)):
                    row[("values", i) if multi_index else f"values_{i}"] = v
            elif attr == "value":
                row["value"] = t.value
            elif attr in ("params", "user_attrs", "intermediate_values"):
                for k, v in getattr(t, attr).items():
                    row[(attr, k) if multi_index else f"{attr}_{k}"] = v
            elif attr == "state":
                row["state"] = t.state.name
            else:
                row[(attr, "") if multi_index else attr] = getattr(t, attr)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if multi_index and len(frame.columns):
        frame.columns = pd.MultiIndex.from_tuples(
            [c if isinstance(c, tuple) else (c, "") for c in frame.columns]
        )
    return frame
