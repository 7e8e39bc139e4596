"""summary.csv: per task, strategy and quantity, the numbers the report's tables print.

Long format, one row per (task, strategy, metric); columns:

- task, strategy
- metric: a metric of results.jsonl (fid_final, inception_fid, precision, ...); `train_seconds`;
  the convergence statistics `steps_to_target` and `seconds_to_target` (units that reached the
  target only); or a rate: `divergence_rate`, `mode_collapse_rate`, `target_reached_rate`, and
  for strategies run with `--tuned` only, `tuning_divergence_rate` (diverged trials of the
  strategy's study over its counted trials; descriptive, never compared)
- n: for a metric, the seeds with a finite value; for a rate, the units counted (units that ran,
  i.e. status ok or diverged; for mode collapse only those with events recorded; for the target
  only those with a curve); for the tuning rate the study's counted trials, 0 where the rows do
  not record them (an older harness)
- mean: mean over the n values; for a rate, the proportion k / n
- std: sample standard deviation (ddof=1) over seeds; empty with one value and for rates
- median: median over seeds; empty for rates
- ci_low, ci_high: the 95% interval, empty where there is none
- interval: `bootstrap` (percentile bootstrap of the mean over seeds, 9999 resamples, seed 0),
  `wilson` (Wilson score interval of the proportion), or `none` (fewer than 3 values, or n = 0)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from reports.catalog import metrics_for
from reports.fmt import distinct, is_missing
from reports.stats import mean_interval, wilson
from reports.tables import strategy_order

COLUMNS = ("task", "strategy", "metric", "n", "mean", "std", "median", "ci_low", "ci_high",
           "interval")
UNIT_STATISTICS = ("train_seconds", "steps_to_target", "seconds_to_target")
RATES = ("divergence_rate", "mode_collapse_rate", "target_reached_rate")
TUNING_RATE = "tuning_divergence_rate"


def _values_row(values: pd.Series) -> dict[str, Any]:
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    x = x[np.isfinite(x)]
    low, high = mean_interval(x)
    return {"n": len(x), "mean": float(x.mean()) if len(x) else None,
            "std": float(x.std(ddof=1)) if len(x) > 1 else None,
            "median": float(np.median(x)) if len(x) else None,
            "ci_low": low, "ci_high": high, "interval": "none" if low is None else "bootstrap"}


def _rate_row(flags: pd.Series) -> dict[str, Any]:
    known = flags.dropna().astype(bool)
    return _proportion_row(int(known.sum()), len(known))


def _tuning_row(mine: pd.DataFrame) -> dict[str, Any] | None:
    """The strategy's tuning divergence, None when it ran untuned. Every seed ran with the best
    trial of the same study, so its effort is read once, from the first tuned row."""
    if "tuned.study" not in mine.columns or mine["tuned.study"].isna().all():
        return None
    effort = mine.dropna(subset=["tuned.study"]).iloc[0]
    k, n = (effort.get(f"tuned.effort.{key}") for key in ("diverged", "trials"))
    if is_missing(k) or is_missing(n):
        return _proportion_row(0, 0)
    return _proportion_row(int(k), int(n))


def _proportion_row(k: int, n: int) -> dict[str, Any]:
    low, high = wilson(k, n)
    return {"n": n, "mean": k / n if n else None, "std": None, "median": None,
            "ci_low": low, "ci_high": high, "interval": "none" if low is None else "wilson"}


def summary_table(frame: pd.DataFrame, extra_metrics: list[str], flags: pd.DataFrame,
                  convergence: pd.DataFrame) -> pd.DataFrame:
    """`flags` from events.unit_flags and `convergence` from convergence.unit_convergence, both
    one row per unit of `frame`, in the same order."""
    parts = (frame, flags[["ran", "diverged", "mode_collapse"]],
             convergence[["has_curve", "steps_to_target", "seconds_to_target"]])
    units = pd.concat([part.reset_index(drop=True) for part in parts], axis=1)
    rows = []
    for task in sorted(units["task"].unique()):
        in_task = units[units["task"] == task]
        names = [m.name for m in metrics_for(distinct(in_task, "settings.dims"), extra_metrics)]
        for strategy in strategy_order(in_task["strategy"]):
            mine = in_task[in_task["strategy"] == strategy]
            ran = mine[mine["ran"]]
            for name in [*names, *UNIT_STATISTICS]:
                values = mine[name] if name in mine.columns else pd.Series(dtype=float)
                rows.append({"task": task, "strategy": strategy, "metric": name,
                             **_values_row(values)})
            reached = ran.loc[ran["has_curve"], "steps_to_target"].notna()
            for name, column in zip(RATES, (ran["diverged"], ran["mode_collapse"], reached)):
                rows.append({"task": task, "strategy": strategy, "metric": name,
                             **_rate_row(column)})
            tuning = _tuning_row(mine)
            if tuning is not None:
                rows.append({"task": task, "strategy": strategy, "metric": TUNING_RATE, **tuning})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def index(summary: pd.DataFrame) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(task, strategy, metric) -> that summary row, with NaN turned back into None."""
    clean = summary.astype(object).where(summary.notna(), None)
    return {(r["task"], r["strategy"], r["metric"]): r for r in clean.to_dict("records")}
