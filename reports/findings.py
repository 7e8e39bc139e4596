"""The "Other findings" section: the exploratory family's verdicts (every metric but the leading one), event rates and convergence, derived
only from the summary, the comparisons and the convergence numbers."""

from __future__ import annotations

from bench.plan import ALPHA, BASELINE, PRIMARY_METRIC
from reports import fmt
from reports.analysis import Analysis
from reports.answer import MATCHING_WORDS
from reports.catalog import metric
from reports.comparisons import PairedComparison
from reports.convergence import strategy_convergence
from reports.tables import strategy_order


def _other_metrics(comparisons: list[PairedComparison], main: str) -> list[str]:
    """Per strategy and matching, the other metrics with a verdict (better or worse)."""
    by_strategy: dict[tuple[str, str], dict[str, list[str]]] = {}
    for c in comparisons:
        if c.metric != main and c.verdict in ("better", "worse"):
            by_strategy.setdefault((c.strategy, c.matching), {}).setdefault(c.verdict, []).append(
                metric(c.metric).label)
    return [f"{strategy} {MATCHING_WORDS[matching]}: " + "; ".join(
                f"{word} than {BASELINE} on {', '.join(labels)}" for word, labels in words.items())
            for (strategy, matching), words in by_strategy.items()]


def _rates(analysis: Analysis, task: str, name: str, what: str) -> str | None:
    """Every strategy's rate as k of N, 0 of N included."""
    parts = []
    for strategy in strategy_order(analysis.in_task(task)["strategy"]):
        row = analysis.value(task, strategy, name)
        if row and row["n"]:
            k = round(row["mean"] * row["n"])
            parts.append(f"{strategy} {k} of {row['n']} ({100 * row['mean']:.0f}%, 95% CI "
                         f"{100 * row['ci_low']:.0f}–{100 * row['ci_high']:.0f}%)")
    return f"{what}: {'; '.join(parts)}" if parts else None


def _speedups(analysis: Analysis, task: str) -> str | None:
    units = analysis.convergence[analysis.convergence["task"] == task]
    parts = []
    for c in strategy_convergence(units):
        if c.strategy == BASELINE or c.speedup is None:
            continue
        if c.low is None:
            parts.append(f"{c.strategy} {fmt.num(c.speedup)}× (no interval)")
        else:
            # No rank test backs this interval, and few seeds make it narrow: say so.
            clear = "no clear difference" if c.low <= 1 <= c.high else (
                "faster by the interval alone" if c.low > 1 else "slower by the interval alone")
            parts.append(f"{c.strategy} {fmt.num(c.speedup)}× (95% CI {fmt.num(c.low)} to "
                         f"{fmt.num(c.high)}: {clear})")
    if not parts:
        return None
    return f"steps to reach {BASELINE}'s median final domain FID, speed-up: {'; '.join(parts)}"


def _task_lines(analysis: Analysis, task: str, label: str) -> list[str]:
    lines = [f"other metrics, {text}." for text in
             _other_metrics(analysis.comparisons[task], PRIMARY_METRIC)]
    for name, what in (("divergence_rate", "diverged"), ("mode_collapse_rate", "mode collapse")):
        text = _rates(analysis, task, name, what)
        if text:
            lines.append(text + ".")
    speed = _speedups(analysis, task)
    if speed:
        lines.append(speed + ".")
    failed = analysis.in_task(task)["status"].eq("failed").sum()
    if failed:
        lines.append(f"{failed} unit(s) failed and did not train (reasons in the task section).")
    return [f"- {label}: {line}" for line in lines]


def _across_tasks(labels: dict[str, str], analysis: Analysis) -> list[str]:
    """Per strategy, its leading-metric verdicts on every task: does it hold in 2D and 3D?"""
    verdicts: dict[str, list[str]] = {}
    for task, comparisons in analysis.comparisons.items():
        for c in comparisons:
            if c.metric == PRIMARY_METRIC:
                verdicts.setdefault(c.strategy, []).append(
                    f"{c.verdict} {MATCHING_WORDS[c.matching]} on {labels[task]}")
    return [f"- {strategy} across tasks: {'; '.join(task_verdicts)}."
            for strategy, task_verdicts in sorted(verdicts.items())]


def findings_section(analysis: Analysis) -> str:
    lines = ["## Other findings", "",
             "Other metrics with a verdict (paired by seed, Holm within the exploratory "
             f"family, Holm p below {ALPHA}), event rates with Wilson intervals, and the speed "
             "of convergence.", ""]
    labels = {task: fmt.task_label(analysis.in_task(task), task) for task in analysis.tasks}
    for task in analysis.tasks:
        lines += _task_lines(analysis, task, labels[task])
    if len(analysis.tasks) > 1:
        lines += _across_tasks(labels, analysis)
    return "\n".join(lines)
