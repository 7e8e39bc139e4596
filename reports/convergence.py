"""Convergence: how soon each strategy's domain-FID curve reaches the level the baseline ends at.

Per task the target is the median final domain FID of the baseline's units; per unit, the first
evaluation at or below it (step and training seconds); per strategy, the mean over the units
that reach it and the share that do, and the speed-up mean(baseline steps) / mean(steps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.metrics.registry import LEADING, lead
from reports import fmt
from reports.fmt import table
from reports.stats import MIN_SEEDS_FOR_INTERVAL, ratio_interval
from reports.tables import BASELINE, strategy_order

UNIT_COLUMNS = ("unit", "task", "strategy", "seed", "target", "has_curve", "steps_to_target",
                "seconds_to_target")


def target(in_task: pd.DataFrame, baseline: str = BASELINE) -> float | None:
    finals = pd.to_numeric(in_task.loc[in_task["strategy"] == baseline, lead("final")],
                           errors="coerce").dropna()
    return float(finals.median()) if len(finals) else None


def first_reach(curve: pd.DataFrame, level: float) -> tuple[int, float | None] | None:
    """(step, seconds) of the first evaluation with FID <= level, or None if none gets there."""
    if LEADING not in curve.columns:
        return None
    hit = curve[curve[LEADING] <= level]  # NaN (a failed evaluation) never counts as reached
    if hit.empty:
        return None
    seconds = hit["seconds"].iloc[0] if "seconds" in hit.columns else None
    return int(hit["step"].iloc[0]), None if fmt.is_missing(seconds) else float(seconds)


def unit_convergence(frame: pd.DataFrame, curves: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per unit (UNIT_COLUMNS); steps/seconds are NaN when the target was not reached."""
    targets = {task: target(frame[frame["task"] == task]) for task in frame["task"].unique()}
    rows = []
    for _, unit in frame.iterrows():
        level, curve = targets[unit["task"]], curves.get(unit["unit"])
        reached = None if level is None or curve is None else first_reach(curve, level)
        rows.append([unit["unit"], unit["task"], unit["strategy"], unit["seed"], level,
                     curve is not None and level is not None,
                     *(reached if reached is not None else (None, None))])
    out = pd.DataFrame(rows, columns=list(UNIT_COLUMNS))
    for column in ("target", "steps_to_target", "seconds_to_target"):
        out[column] = pd.to_numeric(out[column], errors="coerce")
    return out


@dataclass(frozen=True)
class StrategyConvergence:
    strategy: str
    units: int  # with a curve and a target
    reached: int
    mean_steps: float | None
    mean_seconds: float | None
    speedup: float | None = None
    low: float | None = None
    high: float | None = None
    speedup_note: str = ""


def _speedup(base: np.ndarray, steps: np.ndarray) -> dict[str, object]:
    if min(len(base), len(steps)) < MIN_SEEDS_FOR_INTERVAL:
        return {"speedup_note": f"too few units reaching the target ({len(steps)} vs "
                                f"{len(base)} of {BASELINE}; needs {MIN_SEEDS_FOR_INTERVAL} "
                                "a side)"}
    if steps.mean() == 0 or base.mean() == 0:
        return {"speedup_note": "undefined: a mean of 0 steps (reached at step 0)"}
    low, high = ratio_interval(base, steps)
    return {"speedup": float(base.mean() / steps.mean()), "low": low, "high": high}


def strategy_convergence(units: pd.DataFrame) -> list[StrategyConvergence]:
    """Per strategy of one task (units from unit_convergence); the baseline first."""
    def reached(strategy: str) -> pd.DataFrame:
        mine = units[(units["strategy"] == strategy) & units["has_curve"]]
        return mine[mine["steps_to_target"].notna()]

    base = reached(BASELINE)["steps_to_target"].to_numpy(dtype=float)
    out = []
    for strategy in strategy_order(units["strategy"]):
        mine = units[(units["strategy"] == strategy) & units["has_curve"]]
        hit = reached(strategy)
        extra = ({} if strategy == BASELINE or BASELINE not in set(units["strategy"])
                 else _speedup(base, hit["steps_to_target"].to_numpy(dtype=float)))
        out.append(StrategyConvergence(
            strategy, len(mine), len(hit),
            float(hit["steps_to_target"].mean()) if len(hit) else None,
            float(hit["seconds_to_target"].mean()) if hit["seconds_to_target"].notna().any()
            else None, **extra))
    return out


def _speedup_text(c: StrategyConvergence) -> str:
    if c.strategy == BASELINE:
        return "1 (baseline)"
    if c.speedup is None:
        return c.speedup_note or fmt.MISSING
    interval = "" if c.low is None else f" (95% CI {fmt.num(c.low)} to {fmt.num(c.high)})"
    return f"{fmt.num(c.speedup)}×{interval}"


def convergence_section(units: pd.DataFrame, summary_value) -> str:
    """Markdown for one task; `summary_value(strategy, metric)` gives the summary's mean."""
    level = units["target"].dropna()
    if level.empty:
        return (f"Convergence: no target, since no {BASELINE} unit of this task has a final "
                "domain FID.")
    rows = []
    for c in strategy_convergence(units):
        share = f"{c.reached} of {c.units}" + (f" ({100 * c.reached / c.units:.0f}%)"
                                                if c.units else "")
        rows.append([c.strategy, share, fmt.num(c.mean_steps, 0), fmt.num(c.mean_seconds, 1),
                     _speedup_text(c), fmt.num(summary_value(c.strategy, lead("auc"))),
                     fmt.num(summary_value(c.strategy, lead("gap")))])
    return (f"Convergence: target = median final domain FID of {BASELINE} = "
            f"{fmt.num(level.iloc[0])}; steps and seconds are means over the units that reach it; "
            f"speed-up = mean steps of {BASELINE} / mean steps of the strategy, 95% bootstrap "
            "interval over seeds.\n\n"
            + table(["strategy", "units reaching target", "mean steps to target",
                     "mean seconds to target", f"speed-up vs {BASELINE}",
                     "domain FID AUC (mean)", "final − best (mean)"], rows))
