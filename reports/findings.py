"""The "Findings" section: short sentences derived only from the summary and the comparisons."""

from __future__ import annotations

import pandas as pd

from reports import fmt
from reports.stats import Comparison
from reports.tables import BASELINE

LEARNED_RATIO = 0.5  # the baseline "learned" when training at least halves its step-0 FID


def _learned(summary: pd.DataFrame) -> str:
    rows = summary[summary["strategy"] == BASELINE]
    if rows.empty:
        return f"no {BASELINE} runs, so it is unknown whether the GAN learned at all."
    row = rows.iloc[0]
    final, init = row["fid_final_mean"], row["fid_init_mean"]
    if fmt.is_missing(final) or fmt.is_missing(init):
        return (f"cannot tell whether {BASELINE} learned: it has no final FID or no FID at "
                "step 0.")
    if final <= LEARNED_RATIO * init:
        return (f"{BASELINE} learned: mean final FID {fmt.num(final)} is at most half its "
                f"step-0 FID {fmt.num(init)}.")
    return (f"{BASELINE} did not learn enough: mean final FID {fmt.num(final)} is more than "
            f"half its step-0 FID {fmt.num(init)}, so comparisons on this task say little.")


def _verdicts(comparisons: list[Comparison]) -> str:
    if not comparisons:
        return f"no strategy to compare with {BASELINE}."
    groups: dict[str, list[str]] = {}
    for c in comparisons:
        name = c.strategy if c.difference is None else f"{c.strategy} ({fmt.num(c.difference)})"
        groups.setdefault(c.verdict, []).append(name)
    return "; ".join(f"{verdict}: {', '.join(names)}" for verdict, names in groups.items()) + "."


def _problems(summary: pd.DataFrame) -> str | None:
    parts = [f"{row['strategy']} {row['diverged']} diverged, {row['failed']} failed "
             f"of {row['units']}" for _, row in summary.iterrows()
             if row["diverged"] or row["failed"]]
    return "; ".join(parts) if parts else None


def _across_tasks(labels: dict[str, str], comparisons: dict[str, list[Comparison]]) -> list[str]:
    """Per strategy, its verdict on every task: answers "does it hold in 2D and in 3D?"."""
    verdicts: dict[str, list[str]] = {}
    for task, task_comparisons in comparisons.items():
        for c in task_comparisons:
            verdicts.setdefault(c.strategy, []).append(f"{c.verdict} on {labels[task]}")
    return [f"- {strategy} across tasks: {'; '.join(task_verdicts)}."
            for strategy, task_verdicts in sorted(verdicts.items())]


def findings_section(frame: pd.DataFrame, summary: pd.DataFrame,
                     comparisons: dict[str, list[Comparison]]) -> str:
    lines = ["## Findings", "",
             "Final FID, 95% bootstrap intervals over seeds; a strategy counts as better or "
             f"worse than {BASELINE} only when its interval excludes zero.", ""]
    labels = {task: fmt.task_label(frame[frame["task"] == task], task) for task in comparisons}
    for task, task_comparisons in comparisons.items():
        in_summary = summary[summary["task"] == task]
        lines.append(f"- {labels[task]}: {_learned(in_summary)}")
        lines.append(f"- {labels[task]}: {_verdicts(task_comparisons)}")
        problems = _problems(in_summary)
        if problems:
            lines.append(f"- {labels[task]}: not every run finished: {problems}.")
    if len(comparisons) > 1:
        lines += _across_tasks(labels, comparisons)
    return "\n".join(lines)
