"""The axes: how the effect on the leading metric changes with the number of training subjects
and with the pretext's budget (task variants, bench/variants.py), per base task, as a table and
a figure. Every number is a comparison the task sections already hold; nothing new is tested."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.plan import BASELINE, PRIMARY_METRIC
from reports import fmt
from reports.analysis import Analysis
from reports.answer import MATCHING_WORDS
from reports.catalog import metric
from reports.comparisons import PairedComparison
from reports.figures import new_figure, save_png
from reports.tables import strategy_order


@dataclass(frozen=True)
class Axis:
    name: str
    label: str  # the x axis
    column: str  # the rows' value along it
    fixed: str  # the other axis's setting, which must be unset for a task to be on this one


AXES = (Axis("subjects", "training subjects", "settings.train_subjects_used",
             "settings.pretext_steps_scale"),
        Axis("pretext", "CycleGAN pretext steps", "settings.harness.pretext_steps",
             "settings.train_subjects"))


def _value(in_task: pd.DataFrame, column: str) -> float | None:
    values = pd.to_numeric(in_task.get(column, pd.Series(dtype=float)), errors="coerce").dropna()
    return float(values.mean()) if len(values) else None


def series(analysis: Analysis, axis: Axis) -> dict[str, list[tuple[float, str]]]:
    """Per base task with at least two points on `axis`: (value, task) ascending. The base task
    itself is a point (all its subjects, the profile's pretext steps)."""
    out: dict[str, list[tuple[float, str]]] = {}
    for task in analysis.tasks:
        in_task = analysis.in_task(task)
        base = (fmt.distinct(in_task, "settings.base_task") or [None])[0]
        value = _value(in_task, axis.column)
        if base is None or value is None or fmt.distinct(in_task, axis.fixed):
            continue
        out.setdefault(base, []).append((value, task))
    return {base: sorted(points) for base, points in out.items()
            if len({v for v, _ in points}) > 1}


def _leading(analysis: Analysis, task: str) -> list[PairedComparison]:
    name = PRIMARY_METRIC
    return [c for c in analysis.comparisons[task] if c.metric == name]


def _rows(analysis: Analysis, axis: Axis, points: list[tuple[float, str]]) -> list[list[str]]:
    rows = []
    for value, task in points:
        in_task = analysis.in_task(task)
        quality = ([fmt.num(_value(in_task, "pretexts.cyclegan.ssim"), 3),
                    fmt.num(_value(in_task, "pretexts.cyclegan.psnr"), 1)]
                   if axis.name == "pretext" else [])
        for c in _leading(analysis, task):
            digits = metric(c.metric).digits
            interval = (fmt.MISSING if c.ci_low is None else
                        f"{fmt.num(c.ci_low, digits)} to {fmt.num(c.ci_high, digits)}")
            rows.append([fmt.integer(value), *quality, f"`{task}`", c.strategy,
                         MATCHING_WORDS[c.matching], str(c.n_pairs),
                         fmt.num(c.diff_mean, digits), interval, fmt.p_value(c.p_holm),
                         c.verdict])
    return rows


def axis_figure(analysis: Analysis, label: str, kind: str, base: str,
                points: list[tuple[float, str]], out_dir: Path, log: bool = True) -> Path | None:
    """The mean paired difference with its 95% interval against `points`' values, per strategy,
    one panel per matching."""
    found = [(value, c) for value, task in points for c in _leading(analysis, task)
             if c.diff_mean is not None]
    if not found:
        return None
    spread = max(v for v, _ in found) - min(v for v, _ in found)
    figure = new_figure(10, 3.6)
    panels = figure.subplots(1, 2, sharey=True)
    strategies = strategy_order([c.strategy for _, c in found])
    for panel, matching in zip(panels, MATCHING_WORDS):
        for k, strategy in enumerate(strategies):
            mine = sorted((v, c) for v, c in found if c.strategy == strategy
                          and c.matching == matching)
            if not mine:
                continue
            shift = 0.015 * (k - len(strategies) / 2)  # strategies side by side
            xs = [v * (1 + shift) if log else v + shift * spread for v, _ in mine]
            ys = [c.diff_mean for _, c in mine]
            low = [c.diff_mean - (c.ci_low if c.ci_low is not None else c.diff_mean) for _, c in mine]
            high = [(c.ci_high if c.ci_high is not None else c.diff_mean) - c.diff_mean
                    for _, c in mine]
            panel.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=3, label=strategy)
        panel.axhline(0.0, color="grey", linewidth=0.8)
        if log:
            values = sorted({v for v, _ in found})
            panel.set_xscale("log")
            panel.set_xticks(values, [fmt.integer(v) for v in values])
            panel.minorticks_off()
        panel.set_xlabel(label)
        panel.set_title(MATCHING_WORDS[matching])
    label = metric(found[0][1].metric).label
    panels[0].set_ylabel(f"{label}: strategy − {BASELINE}")
    for panel in panels:  # the first panel with lines holds the legend
        if panel.get_legend_handles_labels()[0]:
            panel.legend(fontsize=7)
            break
    return save_png(figure, out_dir, kind, base)


def axes_section(analysis: Analysis, out_dir: Path) -> str | None:
    """None when no base task has two points on either axis."""
    parts = []
    for axis in AXES:
        for base, points in series(analysis, axis).items():
            header = [axis.label, *(["T2→T1 SSIM", "PSNR"] if axis.name == "pretext" else []),
                      "task", "strategy", "matching", "pairs", "difference", "95% CI",
                      "p (Holm)", "verdict"]
            parts += [f"### {base}: the effect against the {axis.label}",
                      fmt.table(header, _rows(analysis, axis, points))]
            drawn = [(axis.label, axis_figure(analysis, axis.label, f"axis-{axis.name}", base,
                                              points, out_dir))]
            if axis.name == "pretext":  # does a better translator make a better start?
                quality = [(q, task) for _, task in points if (q := _value(
                    analysis.in_task(task), "pretexts.cyclegan.ssim")) is not None]
                drawn.append(("pretext's T2→T1 SSIM", axis_figure(
                    analysis, "CycleGAN T2→T1 SSIM (validation)", "axis-pretext-ssim", base,
                    quality, out_dir, log=False)))
            parts += [f"![Effect against the {label}, {base}]({fmt.relative(path, out_dir)})"
                      for label, path in drawn if path is not None]
    if not parts:
        return None
    return "\n\n".join([
        "## Along the axes",
        "Per task variant (fewer training subjects, or another pretext budget), each strategy's "
        f"mean paired difference from {BASELINE} on the leading metric, its 95% interval and "
        "verdict, as in the task's own section. The feature networks, floors and ceilings are "
        "the full task's at every point, so the metric does not change along an axis. A "
        "variant's comparisons are secondary (its own Holm family).", *parts])
