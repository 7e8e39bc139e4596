"""One task's metric tables: every metric per strategy, and each strategy against the baseline."""

from __future__ import annotations

from reports import fmt
from reports.analysis import Analysis
from reports.catalog import Metric, metric
from reports.fmt import table
from reports.stats import ALPHA, Comparison
from reports.summary import UNIT_STATISTICS
from reports.tables import BASELINE, strategy_order


def _bounds(in_task, name: str, digits: int) -> list[str]:
    """The metric's floor and ceiling (reference.floors / ceilings; the curve metric's own)."""
    if name == "fid_final":
        columns = ("reference.fid_floor", "reference.fid_ceiling")
    else:
        columns = (f"reference.floors.{name}", f"reference.ceilings.{name}")
    return [fmt.reference_value(in_task, column, digits) for column in columns]


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


def _comparison_row(c: Comparison) -> list[str]:
    m = metric(c.metric)
    interval = (fmt.MISSING if c.low is None
                else f"{fmt.num(c.low, m.digits)} to {fmt.num(c.high, m.digits)}")
    return [m.label + m.arrow, c.strategy, f"{c.n} vs {c.n_baseline}",
            fmt.num(c.difference, m.digits), interval, fmt.p_value(c.p), fmt.p_value(c.p_holm),
            c.verdict]


def comparisons_table(comparisons: list[Comparison]) -> str:
    families = ", ".join(dict.fromkeys(metric(c.metric).family for c in comparisons))
    return (f"Difference of means (strategy minus {BASELINE}) with a 95% "
            "percentile bootstrap interval over seeds; a two-sided Mann-Whitney U p-value and "
            "its Holm adjustment over this task's comparisons within each metric family "
            f"({families}). A strategy is better or worse only when the interval excludes zero "
            f"and the Holm-adjusted p is below {ALPHA}; ↓ lower is better, ↑ higher is better. "
            "Units that stopped on a non-finite loss have no final FID, AUC or final-sample "
            "metrics, so they are not in these comparisons: see the divergence table.\n\n"
            + table(["metric", "strategy", "seeds", "difference", "95% CI", "p (Mann-Whitney)",
                     "p (Holm)", "verdict"], [_comparison_row(c) for c in comparisons]))
