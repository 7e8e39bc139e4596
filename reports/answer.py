""""The answer", report.md's first section: per task, the primary comparison's verdict at equal
steps and at equal compute, one line per secondary strategy, then the baseline's health."""

from __future__ import annotations

from bench.metrics.registry import LEADING, MEMORIZATION, REGISTRY
from bench.plan import (ALPHA, BASELINE, PRIMARY_METRIC, PRIMARY_STRATEGY,
                        family_sizes, seeds_for)
from datasets.spec import GENERATED_SOURCES
from reports import fmt
from reports.analysis import Analysis
from reports.catalog import metric
from reports.comparisons import PairedComparison, is_variant, leading_scale
from reports.stats import fisher_p

MATCHING_WORDS = {"step": "at equal steps", "compute": "at equal compute"}


def data_kind(analysis: Analysis, task: str) -> str:
    sources = fmt.distinct(analysis.in_task(task), "settings.data_source")
    if not sources:
        return "data source not recorded"
    if all(s in GENERATED_SOURCES for s in sources):
        return f"synthetic {' / '.join(sources)} data, not real scans"
    return f"real scans ({' / '.join(sources)})"


def _rate(analysis: Analysis, task: str, strategy: str, name: str) -> tuple[int, int] | None:
    row = analysis.value(task, strategy, name)
    if not row or not row["n"]:
        return None
    return round((row["mean"] or 0.0) * row["n"]), int(row["n"])


def rate_text(analysis: Analysis, task: str, strategy: str, name: str) -> str:
    """`k of N`, also when k is 0."""
    rate = _rate(analysis, task, strategy, name)
    return "no units ran" if rate is None else f"{rate[0]} of {rate[1]}"


def _divergence_note(analysis: Analysis, task: str, strategy: str) -> str:
    mine, base = (_rate(analysis, task, s, "divergence_rate") for s in (strategy, BASELINE))
    if mine is None or base is None:
        return ""
    p = fisher_p(mine[0], mine[1], base[0], base[1])
    text = (f"; diverged: {strategy} {mine[0]} of {mine[1]}, {BASELINE} {base[0]} of {base[1]}")
    if p is not None and p < ALPHA:
        text += f", rates differ (Fisher exact p {fmt.p_value(p)})"
    return text


def verdict_text(c: PairedComparison) -> str:
    """`verdict` then its numbers: effect, interval, pairs, Holm p, against the smallest effect."""
    m = metric(c.metric)
    words = f"**{c.verdict}**"
    if c.verdict == "no verdict":
        return f"{words} ({c.why})"
    numbers = [f"difference {fmt.num(c.diff_mean, m.digits)}",
               f"95% CI {fmt.num(c.ci_low, m.digits)} to {fmt.num(c.ci_high, m.digits)}",
               f"{c.n_pairs} seed pairs" + (f", {c.n_diverged} lost unit(s) counted at the worst"
                                            if c.n_diverged else ""),
               f"Holm p {fmt.p_value(c.p_holm)}"]
    if c.beyond_smallest is not None:
        numbers.append({"yes": "larger than", "no": "smaller than",
                        "unclear": "not clearly larger than"}
                       [c.beyond_smallest] + f" the smallest effect of interest "
                       f"({fmt.num(c.smallest_effect, m.digits)})")
    tail = "" if c.verdict in ("better", "worse") else f"; {c.why}"
    return f"{words} ({'; '.join(numbers)}{tail})"


def _by_matching(comparisons: list[PairedComparison], strategy: str, name: str,
                 fit: bool, dims: int) -> str:
    """Each matching's verdict; on a task whose baseline is not fit (said once, above), only
    the mean paired difference, marked as descriptive. Either way flagged where a validated
    distance disagrees."""
    found = {c.matching: c for c in comparisons if c.strategy == strategy and c.metric == name}
    if fit:
        return "; ".join(f"{MATCHING_WORDS[k]}: {verdict_text(c)}"
                         f"{disagreement(c, comparisons, dims)}" for k, c in found.items())
    digits = metric(name).digits
    parts = [f"{MATCHING_WORDS[k]} {fmt.num(c.diff_mean, digits)} over {c.n_pairs} seed pair(s)"
             f"{disagreement(c, comparisons, dims)}"
             for k, c in found.items() if c.diff_mean is not None]
    return ("mean paired difference " + ", ".join(parts) + " (descriptive only)" if parts
            else "no paired values")


def _improves(c: PairedComparison) -> bool | None:
    """Whether the mean paired difference points to the strategy being better."""
    if c.diff_mean is None or c.diff_mean == 0:
        return None
    return (c.diff_mean > 0) == c.higher_is_better


def disagreement(lead: PairedComparison, comparisons: list[PairedComparison], dims: int) -> str:
    """A flag naming every other compared metric of the images' distribution (memorization says
    something else) that passed the validation suite in these dims (its registry entry's
    `validated`) whose mean paired difference (same strategy, same matching) points the other
    way from the leading metric's: a verdict that flips with the metric is not yet an answer."""
    direction = _improves(lead)
    against = []
    for c in comparisons:
        entry = REGISTRY.get(c.metric)
        if (c.strategy != lead.strategy or c.matching != lead.matching or entry is None
                or entry.family in (None, MEMORIZATION) or dims not in entry.validated
                or entry.name == LEADING):
            continue
        other = _improves(c)
        if direction is not None and other is not None and other != direction:
            against.append(f"{metric(c.metric).label} (difference "
                           f"{fmt.num(c.diff_mean, metric(c.metric).digits)})")
    if not against:
        return ""
    return (" [**metrics disagree**: " + ", ".join(against) + " points the other way, and "
            "passed the validation suite too]")


def _task_block(analysis: Analysis, task: str) -> list[str]:
    in_task = analysis.in_task(task)
    dims = fmt.dims(in_task)
    name = PRIMARY_METRIC
    label = metric(name).label
    comparisons = analysis.comparisons[task]
    seeds = in_task["seed"].nunique()
    lines = [f"### {fmt.task_label(in_task, task)}: {data_kind(analysis, task)}, {seeds} seed(s)",
             ""]
    present = set(in_task["strategy"])
    health = analysis.health[task]
    variant = is_variant(in_task)
    if BASELINE in present and not health.fit:
        lines.append(f"- **No verdict on this task**: {health.text}.")
    if variant:
        lines.append(f"- A variant of {fmt.distinct(in_task, 'settings.base_task')[0]} (see "
                     "Along the axes): every line is secondary.")
    elif PRIMARY_STRATEGY in present and BASELINE in present:
        lines.append(f"- **{PRIMARY_STRATEGY} vs {BASELINE}** ({label}, primary): "
                     f"{_by_matching(comparisons, PRIMARY_STRATEGY, name, health.fit, dims)}"
                     f"{_divergence_note(analysis, task, PRIMARY_STRATEGY)}.")
    else:
        missing = " and ".join(s for s in (PRIMARY_STRATEGY, BASELINE) if s not in present)
        lines.append(f"- **no verdict**: the primary comparison needs {missing} runs in this task.")
    secondary = sorted(present - {BASELINE} - (set() if variant else {PRIMARY_STRATEGY}))
    size = family_sizes([], dims, variant)["secondary"]
    if secondary and seeds < seeds_for(size):
        lines.append(f"- Secondary lines: with {seeds} seed(s) none can reach a verdict (its "
                     f"family of {size} tests needs {seeds_for(size)} seeds of consistent "
                     "improvement); they describe.")
    for strategy in secondary:
        text = (_by_matching(comparisons, strategy, name, health.fit, dims)
                if BASELINE in present else "")
        lines.append(f"- {strategy} vs {BASELINE} ({label}, secondary): "
                     f"{text or 'no comparison'}{_divergence_note(analysis, task, strategy)}.")
    lines.append(f"- Baseline: {health.text if health.fit else 'as above'}; diverged "
                 f"{rate_text(analysis, task, BASELINE, 'divergence_rate')}, mode collapse "
                 f"{rate_text(analysis, task, BASELINE, 'mode_collapse_rate')}.")
    return lines


def answer_section(analysis: Analysis) -> str:
    lines = ["## The answer", "",
             f"Does starting from the CycleGAN T2→T1 generator ({PRIMARY_STRATEGY}) beat "
             f"starting from scratch? Declared before any data: the primary endpoint is the "
             f"leading metric's final value; the primary comparison is {PRIMARY_STRATEGY} "
             f"against {BASELINE}, at equal steps (a better starting point?) and at equal "
             "compute, pretext included (worth its cost?), paired by seed, Holm-corrected over "
             f"these two; the smallest effect of interest is "
             f"{leading_scale(analysis.frame).smallest_effect:g} of the way from "
             "the metric's real floor to its untrained ceiling. Every other line is secondary: "
             "the other strategies and controls on the same metric, one Holm family per task, "
             "sized for the full built-in plan (other metrics are exploratory). Lower is better for "
             "the FID; a verdict needs the 95% interval to exclude zero and Holm p below "
             f"{ALPHA}, and is given only where {BASELINE} learned and did not collapse.", ""]
    for task in analysis.tasks:
        lines += _task_block(analysis, task) + [""]
    return "\n".join(lines).rstrip()
