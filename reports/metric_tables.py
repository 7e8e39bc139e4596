"""One task's metric tables: every metric per strategy, and each strategy against the baseline."""

from __future__ import annotations

from bench.plan import ALPHA
from reports import fmt
from reports.analysis import Analysis
from reports.catalog import Metric, bound_columns, metric
from reports.comparisons import PairedComparison
from reports.fmt import table
from reports.summary import UNIT_STATISTICS
from reports.tables import BASELINE, strategy_order


def _bounds(in_task, name: str, digits: int) -> list[str]:
    return [fmt.reference_value(in_task, column, digits) for column in bound_columns(name)]


def metrics_table(analysis: Analysis, task: str) -> str:
    """Rows: metrics; columns: strategies, then the metric's floor and ceiling; cells: mean ±
    std over seeds (n)."""
    in_task = analysis.in_task(task)
    strategies = strategy_order(in_task["strategy"])
    units = {s: int((in_task["strategy"] == s).sum()) for s in strategies}
    rows = []
    for m in [*analysis.metrics(task), Metric(UNIT_STATISTICS[0], "training seconds", digits=1)]:
        label = m.label + m.arrow
        cells = []
        for strategy in strategies:
            row = analysis.value(task, strategy, m.name)
            cells.append(fmt.MISSING if row is None else fmt.mean_std(
                row["mean"], row["std"], row["n"], units[strategy], m.digits))
        rows.append([label, *cells, *_bounds(in_task, m.name, m.digits)])
    return table(["metric", *(f"{s} ({units[s]} units)" for s in strategies),
                  "floor (real)", "ceiling (untrained)"], rows)


def _comparison_row(c: PairedComparison) -> list[str]:
    m = metric(c.metric)
    interval = (fmt.MISSING if c.ci_low is None
                else f"{fmt.num(c.ci_low, m.digits)} to {fmt.num(c.ci_high, m.digits)}")
    verdict = c.verdict if c.verdict in ("better", "worse") else f"{c.verdict}: {c.why}"
    return [m.label + m.arrow, c.strategy, c.matching, c.family,
            f"{c.n_pairs}" + (f" ({c.n_diverged} lost)" if c.n_diverged else ""),
            fmt.num(c.diff_mean, m.digits), interval, fmt.p_value(c.p), fmt.p_value(c.p_holm),
            c.beyond_smallest or fmt.MISSING, verdict]


def comparisons_table(comparisons: list[PairedComparison], smallest_effect: float) -> str:
    """`smallest_effect`: the share of ceiling − floor (bench.metrics.states.Scale)."""
    return (f"Per seed pair, strategy minus {BASELINE} (seed k against seed k; `compute`: "
            f"against {BASELINE} at the strategy's own pretext + GAN FLOPs). Mean paired "
            "difference with a 95% bootstrap interval, exact two-sided Wilcoxon signed-rank p, "
            "Holm-adjusted within its family (primary: the primary strategy on the leading "
            "metric; secondary: every other strategy on it; exploratory: every other metric). "
            "Lost units (diverged, pretext failed) stay in their pair: worst rank in the test, the metric's ceiling "
            "or worse in the mean. A strategy is better or worse only when the interval excludes "
            f"zero and the Holm p is below {ALPHA}; 'beyond smallest': whether the interval lies "
            f"beyond the smallest effect of interest ({smallest_effect:g} of ceiling − floor). "
            "↓ lower is better, ↑ higher is better.\n\n"
            + table(["metric", "strategy", "matching", "family", "pairs", "difference",
                     "95% CI", "p", "p (Holm)", "beyond smallest", "verdict"],
                    [_comparison_row(c) for c in comparisons]))
