"""Divergence and mode collapse per unit (status and the harness's detected events) and their
per-strategy tables.

A unit diverged when training stopped on it (status "diverged") or when the harness detected a
divergence event while it kept training (events.diverged). Rates count only units that ran
(ok or diverged); a failed unit never trained. Rows from harness versions without `events`
count for divergence by their status alone and are left out of the mode-collapse rate.

A strategy run with `--tuned` also shows how many trials of its study diverged. That rate is kept
apart from the units' rate: the trials trained with other hyper-parameters than the final run.
"""

from __future__ import annotations

from typing import Any, Callable

import pandas as pd

from bench.metrics import states
from bench.metrics.registry import lead
from reports import fmt
from reports.fmt import table
from reports.summary import TUNING_RATE
from reports.tables import strategy_order

DIVERGENCE_EVENTS = {"nonfinite_step": "non-finite loss", lead("blowup_step"): "FID blow-up",
                     "d_saturation_step": "D saturation"}
COLLAPSE_EVENTS = {"modes_collapse_step": "lost known modes",
                   "coverage_collapse_step": "coverage collapse",
                   # Recorded by harness versions before the validation suite.
                   "diversity_collapse_step": "diversity collapse"}
RAN = ("ok", "diverged")


def _flag(value: Any) -> bool | None:
    return None if fmt.is_missing(value) else bool(value)


def unit_flags(frame: pd.DataFrame) -> pd.DataFrame:
    """Per unit: ran, diverged and mode_collapse (None where unknown), aligned with `frame`."""
    rows = []
    for _, unit in frame.iterrows():
        ran = unit["status"] in RAN
        diverged = unit["status"] == "diverged" or bool(_flag(unit.get("events.diverged")))
        collapse = _flag(unit.get("events.mode_collapse"))
        rows.append({"unit": unit["unit"], "task": unit["task"], "strategy": unit["strategy"],
                     "seed": unit["seed"], "ran": ran, "diverged": diverged if ran else None,
                     "mode_collapse": collapse if ran else None})
    return pd.DataFrame(rows, index=frame.index)


def _event_steps(unit: pd.Series, kinds: dict[str, str]) -> list[str]:
    found = [f"{label} at step {int(unit[f'events.{key}'])}" for key, label in kinds.items()
             if not fmt.is_missing(unit.get(f"events.{key}"))]
    if kinds is DIVERGENCE_EVENTS and unit["status"] == "diverged":
        step = unit.get("diverged_step")
        found.append("training stopped" + ("" if fmt.is_missing(step) else f" at step {int(step)}"))
    return found


def unit_events(unit: pd.Series) -> str:
    """Every detected event of one unit with its first step, for the units table."""
    return ", ".join(_event_steps(unit, DIVERGENCE_EVENTS) + _event_steps(unit, COLLAPSE_EVENTS))


def _rate_text(row: dict | None) -> str:
    if row is None or row["n"] == 0:
        return fmt.MISSING
    text = f"{100 * row['mean']:.0f}%"
    if not fmt.is_missing(row["ci_low"]):
        text += f" ({100 * row['ci_low']:.0f}–{100 * row['ci_high']:.0f}%)"
    return text


def _tuning_text(row: dict | None) -> str:
    if row is None:
        return "not tuned"
    if row["n"] == 0:  # effort recorded by a harness that did not count diverged trials
        return fmt.MISSING
    n = int(row["n"])
    return (f"{round(row['mean'] * n)} / {n} ({100 * row['mean']:.0f}%, 95% Wilson CI "
            f"{100 * row['ci_low']:.0f}–{100 * row['ci_high']:.0f}%)")


def event_table(in_task: pd.DataFrame, flags: pd.DataFrame, column: str, metric: str,
                kinds: dict[str, str], lookup: Callable[[str, str], dict | None],
                tuning: bool = False) -> str:
    """Per strategy: units counted, how many had the event, the rate with its Wilson interval,
    and which events each affected seed had at which step; with `tuning`, also the diverged
    trials of each strategy's study."""
    rows = []
    for strategy in strategy_order(in_task["strategy"]):
        mine = flags[flags["strategy"] == strategy]
        known = mine[mine[column].notna()]
        hit = known[known[column].astype(bool)]
        details = []
        for index in hit.index:
            steps = _event_steps(in_task.loc[index], kinds)
            details.append(f"seed {hit.loc[index, 'seed']}: "
                           + (", ".join(steps) or "no step recorded"))
        rows.append([strategy, str(len(known)), str(len(hit)),
                     _rate_text(lookup(strategy, metric)),
                     *([_tuning_text(lookup(strategy, TUNING_RATE))] if tuning else []),
                     "; ".join(details) or "none"])
    return table(["strategy", "units counted", "units with event", "rate (95% Wilson CI)",
                  *(["tuning trials diverged"] if tuning else []), "events (first step)"], rows)


def events_section(in_task: pd.DataFrame, flags: pd.DataFrame,
                   lookup: Callable[[str, str], dict | None]) -> str:
    tuned = any(lookup(s, TUNING_RATE) is not None for s in in_task["strategy"].unique())
    divergence = event_table(in_task, flags, "diverged", "divergence_rate", DIVERGENCE_EVENTS,
                             lookup, tuning=tuned)
    collapse = event_table(in_task, flags, "mode_collapse", "mode_collapse_rate",
                           COLLAPSE_EVENTS, lookup)
    tuning_note = (" Tuning trials diverged: trials of the strategy's study whose losses or "
                   "images became non-finite, over the study's counted trials (complete, "
                   "pruned or failed; re-run records of killed workers are not counted)."
                   if tuned else "")
    return ("Divergence (training stopped, or a non-finite loss, FID blow-up or saturated "
            "discriminator was detected; units that ran):" + tuning_note + "\n\n" + divergence
            + f"\n\nMode collapse (bench.metrics.states, for consecutive evaluations: fewer than "
            f"{states.COLLAPSE_MODES} of the known modes real images cover, where the task knows "
            f"its modes; elsewhere coverage below {states.COLLAPSE_COVERAGE} of the real images', "
            "which also falls with low fidelity; units that ran with events recorded):\n\n"
            + collapse)
