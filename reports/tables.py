"""Per (task, strategy) unit counts and transfers."""

from __future__ import annotations

import pandas as pd

from bench.plan import BASELINE
from bench.records import STATUSES

__all__ = ["BASELINE", "MIN_SEEDS", "strategy_order", "summarize"]
MIN_SEEDS = 3  # below this, a spread over seeds is anecdotal


def strategy_order(strategies: list[str] | pd.Series) -> list[str]:
    """The baseline first, then the others alphabetically."""
    names = sorted(set(strategies))
    return ([BASELINE] if BASELINE in names else []) + [s for s in names if s != BASELINE]


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    return pd.Series([None] * len(frame), index=frame.index, dtype=object)


def _summary_row(units: pd.DataFrame) -> dict[str, object]:
    row: dict[str, object] = {
        "units": len(units),
        "seeds": units["seed"].nunique(),
        **{status: int((units["status"] == status).sum()) for status in STATUSES},
    }
    transferred = pd.to_numeric(_column(units, "transfer.total"), errors="coerce").dropna()
    # Out of G and D together: a strategy may transfer into either.
    trainable = (pd.to_numeric(_column(units, "transfer.g_parameters"), errors="coerce")
                 + pd.to_numeric(_column(units, "transfer.d_parameters"), errors="coerce").fillna(0)
                 ).dropna()
    row["transfer_min"] = int(transferred.min()) if len(transferred) else None
    row["transfer_max"] = int(transferred.max()) if len(transferred) else None
    row["gd_parameters"] = int(trainable.max()) if len(trainable) else None
    return row


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, strategy): unit and seed counts by status, parameters transferred."""
    rows = []
    for task in sorted(frame["task"].unique()):
        in_task = frame[frame["task"] == task]
        for strategy in strategy_order(in_task["strategy"]):
            units = in_task[in_task["strategy"] == strategy]
            rows.append({"task": task, "strategy": strategy, **_summary_row(units)})
    return pd.DataFrame(rows)
