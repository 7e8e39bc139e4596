"""Per (task, strategy) numbers and comparisons against the baseline, as plain data."""

from __future__ import annotations

import pandas as pd

from reports.load import STATUSES
from reports.stats import Comparison, compare

BASELINE = "scratch"
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
    for metric in ("fid_final", "fid_best", "fid_init"):
        values = pd.to_numeric(units[metric], errors="coerce").dropna()
        row[f"{metric}_n"] = len(values)
        row[f"{metric}_mean"] = values.mean() if len(values) else None
        # Sample std (ddof=1): the spread over seeds, undefined for a single seed.
        row[f"{metric}_std"] = values.std(ddof=1) if len(values) > 1 else None
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
    """One row per (task, strategy): unit counts by status and FID mean/std/n over seeds."""
    rows = []
    for task in sorted(frame["task"].unique()):
        in_task = frame[frame["task"] == task]
        for strategy in strategy_order(in_task["strategy"]):
            units = in_task[in_task["strategy"] == strategy]
            rows.append({"task": task, "strategy": strategy, **_summary_row(units)})
    return pd.DataFrame(rows)


def compare_task(in_task: pd.DataFrame, baseline: str = BASELINE) -> list[Comparison]:
    """Final FID of every other strategy of one task against the baseline's, over seeds."""
    if baseline not in set(in_task["strategy"]):
        return []
    base = in_task.loc[in_task["strategy"] == baseline, "fid_final"].to_numpy(dtype=float)
    comparisons = []
    for strategy in strategy_order(in_task["strategy"]):
        if strategy == baseline:
            continue
        values = in_task.loc[in_task["strategy"] == strategy, "fid_final"].to_numpy(dtype=float)
        comparisons.append(compare(values, base, strategy, baseline))
    return comparisons
