"""Per-task figures from the numbers: domain-FID curves with their spread over seeds, and the key
metrics as bars with bootstrap intervals. Matplotlib's Figure + Agg canvas directly, never
pyplot, so no global backend or figure state is touched."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pandas as pd

from bench.metrics.registry import LEADING, lead
from ground.atomic import write_atomic
from reports import fmt
from reports.analysis import Analysis
from reports.catalog import KEY_METRICS, bound_columns, metric
from reports.tables import strategy_order

FIGURES_DIR = "figures"


def new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def save_png(figure, out_dir: Path, kind: str, task: str) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", task)
    return write_atomic(out_dir / FIGURES_DIR / f"{kind}_{safe}.png", buffer.getvalue())


def _seed_curves(analysis: Analysis, task: str) -> dict[str, pd.DataFrame]:
    """Per strategy, FID by step over its seeds: mean, min, max."""
    out = {}
    in_task = analysis.in_task(task)
    for strategy in strategy_order(in_task["strategy"]):
        parts = [analysis.curves[u][["step", LEADING]] for u in in_task.loc[
            in_task["strategy"] == strategy, "unit"] if u in analysis.curves
            and LEADING in analysis.curves[u].columns]
        points = pd.concat(parts).dropna() if parts else pd.DataFrame()
        if len(points):
            # Diverged seeds stop early: later steps summarize the seeds still running.
            out[strategy] = points.groupby("step")[LEADING].agg(["mean", "min", "max"])
    return out


def _floor_and_ceiling(axes, analysis: Analysis, task: str) -> None:
    for label, column, style in zip(("floor", "ceiling"), bound_columns(lead("final")), (":", "--")):
        for value in fmt.distinct(analysis.in_task(task), column)[:1]:
            axes.axhline(float(value), color="grey", linestyle=style, label=label)


def fid_curves(analysis: Analysis, task: str, out_dir: Path) -> Path | None:
    curves = _seed_curves(analysis, task)
    if not curves:
        return None
    figure = new_figure(6, 4)
    axes = figure.add_subplot()
    for strategy, stats in curves.items():
        line, = axes.plot(stats.index, stats["mean"], label=strategy)
        axes.fill_between(stats.index, stats["min"], stats["max"], color=line.get_color(),
                          alpha=0.2, linewidth=0)
    _floor_and_ceiling(axes, analysis, task)
    targets = analysis.convergence.loc[analysis.convergence["task"] == task, "target"].dropna()
    if len(targets):
        axes.axhline(float(targets.iloc[0]), color="black", linestyle="-.", linewidth=0.8,
                     label="target (median final of baseline)")
    if all((s["min"] > 0).all() for s in curves.values()):
        axes.set_yscale("log")  # FID falls over orders of magnitude early in training
    axes.set(xlabel="step", ylabel="domain FID (mean; band: min–max over seeds)", title=task)
    axes.legend(fontsize="small")
    return save_png(figure, out_dir, "fid", task)


def _flops_curves(analysis: Analysis, task: str) -> dict[str, pd.DataFrame]:
    """Per strategy, mean domain FID by cumulative FLOPs (pretext included), the baseline's
    training past the common budget appended."""
    from reports.curves import read_curve
    out = {}
    in_task = analysis.in_task(task)
    for strategy in strategy_order(in_task["strategy"]):
        parts = []
        for _, unit in in_task[in_task["strategy"] == strategy].iterrows():
            curve = analysis.curves.get(unit["unit"])
            extension = unit.get("files.extension_curve")
            if not fmt.is_missing(extension):
                more = read_curve(Path(unit["run_dir"]) / extension)
                curve = curve if more is None else pd.concat([curve, more])
            if curve is not None and {"flops", LEADING} <= set(curve.columns):
                parts.append(curve[["step", "flops", LEADING]])
        points = pd.concat(parts).dropna() if parts else pd.DataFrame()
        if len(points):
            out[strategy] = points.groupby("step")[["flops", LEADING]].mean()
    return out


def fid_flops(analysis: Analysis, task: str, out_dir: Path) -> Path | None:
    """Leading metric against cumulative training FLOPs, pretexts included: where each curve
    starts right of zero is what its pretext cost."""
    curves = _flops_curves(analysis, task)
    if not curves:
        return None
    figure = new_figure(6, 4)
    axes = figure.add_subplot()
    for strategy, points in curves.items():
        axes.plot(points["flops"], points[LEADING], marker=".", markersize=3, label=strategy)
    _floor_and_ceiling(axes, analysis, task)
    if all((p[LEADING] > 0).all() for p in curves.values()):
        axes.set_yscale("log")
    axes.set(xlabel="cumulative training FLOPs (pretext + GAN)",
             ylabel="domain FID (mean over seeds)", title=task)
    axes.legend(fontsize="small")
    return save_png(figure, out_dir, "flops", task)


def metric_bars(analysis: Analysis, task: str, out_dir: Path) -> Path | None:
    """One panel per key metric that some unit of the task has; bar = mean over seeds,
    whisker = 95% bootstrap interval (none below 3 seeds)."""
    strategies = strategy_order(analysis.in_task(task)["strategy"])
    shown = [name for name in KEY_METRICS
             if any((analysis.value(task, s, name) or {}).get("n") for s in strategies)]
    if not shown:
        return None
    figure = new_figure(2.6 * len(shown), 3.4)
    for i, name in enumerate(shown):
        axes = figure.add_subplot(1, len(shown), i + 1)
        rows = [analysis.value(task, s, name) or {} for s in strategies]
        means = [r.get("mean") for r in rows]
        for x, (row, mean) in enumerate(zip(rows, means)):
            if mean is None:
                continue
            low, high = row.get("ci_low"), row.get("ci_high")
            # A percentile interval need not contain the mean; matplotlib rejects negative bars.
            error = None if low is None else [[max(mean - low, 0)], [max(high - mean, 0)]]
            axes.bar(x, mean, yerr=error, capsize=3, color=f"C{x}")
        axes.set_xticks(range(len(strategies)),
                        [f"{s} (n={r.get('n', 0)})" for s, r in zip(strategies, rows)],
                        rotation=45, ha="right", fontsize="x-small")
        axes.set_title(metric(name).label + metric(name).arrow, fontsize="small")
    figure.suptitle(f"{task}: mean over seeds, 95% bootstrap interval", fontsize="small")
    figure.tight_layout()
    return save_png(figure, out_dir, "metrics", task)


def _marginals(pairs: list, columns: list[str]) -> dict[str, dict[int, float]]:
    """Per column, the share of each label among [[labels], weight] pairs."""
    out: dict[str, dict[int, float]] = {c: {} for c in columns}
    total = sum(w for _, w in pairs) or 1
    for labels, weight in pairs:
        for column, value in zip(columns, labels):
            out[column][value] = out[column].get(value, 0.0) + weight / total
    return out


def mode_histograms(analysis: Analysis, task: str, out_dir: Path) -> Path | None:
    """Per mode column (2D level, head, ventricles, lesion): the task's share of each value
    beside each strategy's, its seeds' final samples pooled, as the mode classifier reads
    them; a value a strategy dropped shows as a missing bar."""
    in_task = analysis.in_task(task)
    if "mode_counts" not in in_task.columns or "reference.modes.columns" not in in_task.columns:
        return None
    known = in_task.dropna(subset=["mode_counts", "reference.modes.columns"])
    if known.empty:
        return None
    first = known.iloc[0]
    columns = json.loads(first["reference.modes.columns"])
    classes = {c: json.loads(first[f"reference.modes.classes.{c}"]) for c in columns}
    series = {"real (task)": _marginals(json.loads(first["reference.modes.frequencies"]), columns)}
    for strategy in strategy_order(known["strategy"]):
        pooled = [pair for cell in known.loc[known["strategy"] == strategy, "mode_counts"]
                  for pair in json.loads(cell)]
        series[strategy] = _marginals(pooled, columns)
    figure = new_figure(3.2 * len(columns), 3.4)
    width = 0.8 / len(series)
    for i, column in enumerate(columns):
        axes = figure.add_subplot(1, len(columns), i + 1)
        for j, (name, marginals) in enumerate(series.items()):
            shares = [marginals[column].get(v, 0.0) for v in range(len(classes[column]))]
            axes.bar([v + (j - (len(series) - 1) / 2) * width for v in range(len(shares))],
                     shares, width, label=name, color="grey" if j == 0 else f"C{j - 1}")
        axes.set_xticks(range(len(classes[column])), classes[column], rotation=45, ha="right",
                        fontsize="x-small")
        axes.set_title(column, fontsize="small")
    figure.axes[0].legend(fontsize="x-small")
    figure.suptitle(f"{task}: share of samples per mode (final samples, seeds pooled)",
                    fontsize="small")
    figure.tight_layout()
    return save_png(figure, out_dir, "modes", task)
