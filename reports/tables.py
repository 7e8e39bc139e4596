"""Per (task, strategy) unit counts and transfers, and comparisons against the baseline."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from reports.catalog import HIGHER, Metric
from reports.load import STATUSES
from reports.stats import Comparison, compare, holm

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


def compare_task(in_task: pd.DataFrame, metrics: list[Metric],
                 baseline: str = BASELINE) -> list[Comparison]:
    """Every other strategy against the baseline on each compared metric of one task, over
    seeds, with Holm-adjusted p-values within each metric family. Metric by metric, then
    strategy by strategy; a metric no unit of the task has is left out."""
    if baseline not in set(in_task["strategy"]):
        return []
    others = [s for s in strategy_order(in_task["strategy"]) if s != baseline]
    comparisons = []
    for metric in metrics:
        values = pd.to_numeric(_column(in_task, metric.name), errors="coerce")
        if values.isna().all():
            continue  # listed under the task's missing metrics instead
        base = values[in_task["strategy"] == baseline].to_numpy(dtype=float)
        comparisons += [compare(values[in_task["strategy"] == s].to_numpy(dtype=float), base, s,
                                baseline, metric.name, metric.better == HIGHER) for s in others]
    family = {m.name: m.family for m in metrics}
    for name in dict.fromkeys(family.values()):
        members = [i for i, c in enumerate(comparisons) if family[c.metric] == name
                   and c.p is not None]
        for i, adjusted in zip(members, holm([comparisons[i].p for i in members])):
            comparisons[i] = replace(comparisons[i], p_holm=adjusted)
    return comparisons
