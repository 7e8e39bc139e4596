"""The "Findings" section: short sentences derived only from the summary, the comparisons, the
event rates and the convergence numbers."""

from __future__ import annotations

from bench.metrics import states
from reports import fmt
from reports.analysis import Analysis
from reports.catalog import metric
from reports.convergence import strategy_convergence
from reports.stats import ALPHA, Comparison
from reports.tables import BASELINE, strategy_order

MAIN = "fid_final"


def _reference(analysis: Analysis, task: str, column: str) -> float | None:
    values = fmt.distinct(analysis.in_task(task), column)
    return float(values[0]) if len(values) == 1 else None


def _learned(analysis: Analysis, task: str) -> str:
    """The baseline's health by the one definition (bench.metrics.states): learned when its mean
    final domain FID no longer scores like noise, collapsed when its coverage is too low."""
    if BASELINE not in set(analysis.in_task(task)["strategy"]):
        return f"no {BASELINE} runs, so it is unknown whether the GAN learned at all."
    final, coverage = ((analysis.value(task, BASELINE, m) or {}).get("mean")
                       for m in ("fid_final", "coverage"))
    floor, ceiling = (_reference(analysis, task, f"reference.fid_{b}") for b in ("floor", "ceiling"))
    learned = states.learned(final, floor, ceiling)
    if learned is None:
        return (f"cannot tell whether {BASELINE} learned: it has no final domain FID, or the "
                "units disagree on its floor and ceiling.")
    where = (f"mean final domain FID {fmt.num(final)}, at {fmt.num(states.position(final, floor, ceiling), 3)} "
             f"of the way from the real floor {fmt.num(floor)} to the untrained ceiling "
             f"{fmt.num(ceiling)}")
    if not learned:
        return (f"{BASELINE} did not learn: its {where} scores like brain-shaped noise (from "
                f"{states.NOISE_POSITION} on), so comparisons on this task say little.")
    collapsed = states.collapsed(coverage, _reference(analysis, task, "reference.floors.coverage"))
    tail = (f"; but it collapsed (mean coverage {fmt.num(coverage, 3)}, below "
            f"{states.COLLAPSE_COVERAGE} of the real level), so comparisons on this task say little."
            if collapsed else ".")
    return f"{BASELINE} learned: its {where} is below the noise level {states.NOISE_POSITION}{tail}"


def _verdicts(comparisons: list[Comparison]) -> str:
    if not comparisons:
        return f"no strategy to compare with {BASELINE}."
    groups: dict[str, list[str]] = {}
    for c in comparisons:
        name = c.strategy if c.difference is None else f"{c.strategy} ({fmt.num(c.difference)})"
        groups.setdefault(c.verdict, []).append(name)
    return "; ".join(f"{verdict}: {', '.join(names)}" for verdict, names in groups.items()) + "."


def _other_metrics(comparisons: list[Comparison]) -> list[str]:
    """Per strategy, the other metrics with a verdict (better or worse)."""
    by_strategy: dict[str, dict[str, list[str]]] = {}
    for c in comparisons:
        if c.metric != MAIN and c.verdict.startswith(("better", "worse")):
            word = c.verdict.split()[0]
            by_strategy.setdefault(c.strategy, {}).setdefault(word, []).append(
                metric(c.metric).label)
    return [f"{strategy}: " + "; ".join(f"{word} than {BASELINE} on {', '.join(labels)}"
                                        for word, labels in words.items())
            for strategy, words in by_strategy.items()]


def _rates(analysis: Analysis, task: str, name: str, what: str) -> str | None:
    parts = []
    for strategy in strategy_order(analysis.in_task(task)["strategy"]):
        row = analysis.value(task, strategy, name)
        if row and row["n"] and row["mean"]:
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
    comparisons = analysis.comparisons[task]
    main = [c for c in comparisons if c.metric == MAIN]
    lines = [_learned(analysis, task), "final domain FID: " + _verdicts(main)]
    lines += [f"other metrics, {text}." for text in _other_metrics(comparisons)]
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
    """Per strategy, its final-FID verdict on every task: answers "does it hold in 2D and 3D?"."""
    verdicts: dict[str, list[str]] = {}
    for task, comparisons in analysis.comparisons.items():
        for c in comparisons:
            if c.metric == MAIN:
                verdicts.setdefault(c.strategy, []).append(f"{c.verdict} on {labels[task]}")
    return [f"- {strategy} across tasks: {'; '.join(task_verdicts)}."
            for strategy, task_verdicts in sorted(verdicts.items())]


def findings_section(analysis: Analysis) -> str:
    lines = ["## Findings", "",
             "95% bootstrap intervals over seeds; a strategy counts as better or worse than "
             f"{BASELINE} on a metric only when its interval excludes zero and the "
             f"Holm-adjusted Mann-Whitney p is below {ALPHA}.", ""]
    labels = {task: fmt.task_label(analysis.in_task(task), task) for task in analysis.tasks}
    for task in analysis.tasks:
        lines += _task_lines(analysis, task, labels[task])
    if len(analysis.tasks) > 1:
        lines += _across_tasks(labels, analysis)
    return "\n".join(lines)
