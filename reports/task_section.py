"""One task's section of report.md: reference values, strategies, metrics, comparisons against the
baseline, divergence and collapse, convergence, figures, problems and every unit."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.metrics.registry import lead
from bench.plan import PRIMARY_METRIC
from reports import fmt
from reports.analysis import Analysis
from reports.catalog import FINAL_SAMPLE_METRICS, bound_columns, metric
from reports.comparisons import leading_scale
from reports.convergence import convergence_section
from reports.events import events_section, unit_events
from reports.fmt import table, task_label
from reports.metric_tables import comparisons_table, metrics_table
from reports.movement import movement_table
from reports.tables import BASELINE, MIN_SEEDS, strategy_order


def _reference_line(in_task: pd.DataFrame) -> str:
    def value(column: str, digits: int = 2) -> str:
        return fmt.reference_value(in_task, column, digits)
    bias = []
    for net, label in (("domain", "domain FID"), ("inception", "Inception FID")):
        column = f"reference.fid_bias.{net}"
        if fmt.distinct(in_task, f"{column}.bias"):
            units = fmt.distinct(in_task, f"{column}.unit") or ["samples"]
            bias.append(f"{label} {value(f'{column}.bias')} at {value(f'{column}.n', 0)} "
                        f"{units[0]} (fitted at infinitely many: {value(f'{column}.fid_inf')})")
    bias_text = ("" if not bias else " Sample size alone adds to the FID of two real sets: "
                 + "; ".join(bias) + " (FID linear in 1/N, Chong & Forsyth 2020). A generator's "
                 "own bias depends on its samples but is of this order: differences smaller than "
                 "it deserve care, and none of these FIDs compares with published values.")
    floor, ceiling = bound_columns(PRIMARY_METRIC)
    return (f"Domain FID of real val vs real test (floor): {value(floor)}; "
            f"untrained generator (ceiling): {value(ceiling)}. "
            f"Inception FID floor: {value('reference.inception_floor')}. "
            f"MS-SSIM among real test images: {value('reference.msssim_real', 3)}.{bias_text}")


def _transfer_text(row: pd.Series) -> str:
    low, high, trainable = row["transfer_min"], row["transfer_max"], row["gd_parameters"]
    if fmt.is_missing(low):
        return fmt.MISSING
    text = fmt.integer(low) if low == high else f"{fmt.integer(low)}–{fmt.integer(high)}"
    if not fmt.is_missing(trainable) and trainable > 0:
        text += f" of {fmt.integer(trainable)} ({100 * high / trainable:.0f}%)"
    return text


def _strategy_table(status: pd.DataFrame) -> str:
    rows = [[row["strategy"], str(row["seeds"]),
             f"{row['ok']} / {row['diverged']} / {row['failed']}", _transfer_text(row)]
            for _, row in status.iterrows()]
    return table(["strategy", "seeds", "ok / diverged / failed",
                  "parameters transferred (of G+D)"], rows)


def _seed_warnings(analysis: Analysis, task: str, status: pd.DataFrame) -> list[str]:
    lines = []
    for _, row in status.iterrows():
        n = (analysis.value(task, row["strategy"], PRIMARY_METRIC) or {}).get("n", 0)
        if n < MIN_SEEDS:
            lines.append(f"> Warning: {row['strategy']} has only {n} seed(s) with a final domain "
                         f"FID (of {row['units']} units): fewer than {MIN_SEEDS}, so its spread "
                         "and any comparison are unreliable.")
    return lines


def _problems(in_task: pd.DataFrame) -> list[str]:
    lines = []
    for _, unit in in_task[in_task["status"] != "ok"].iterrows():
        where = ("" if fmt.is_missing(unit["diverged_step"])
                 else f" at step {int(unit['diverged_step'])}")
        reason = "no reason recorded" if fmt.is_missing(unit["reason"]) else unit["reason"]
        lines.append(f"- `{unit['unit']}`: {unit['status']}{where}: {fmt.cell(reason)}")
    return lines


def _missing_reason(unit: pd.Series, name: str) -> str:
    for key in (name, metric(name).missing_with,
                "final_samples" if name in FINAL_SAMPLE_METRICS else None, "all"):
        reason = unit.get(f"metrics_missing.{key}") if key else None
        if not fmt.is_missing(reason):
            return str(reason)
    if unit["status"] != "ok":
        return f"unit {unit['status']}: {unit['reason']}"
    return "no reason recorded (older harness versions did not compute it)"


def _missing_metrics(analysis: Analysis, task: str) -> list[str]:
    """One line per (reason, metrics) with the units it applies to, so one absent network does
    not fill a page."""
    in_task = analysis.in_task(task)
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for _, unit in in_task.iterrows():
        by_reason: dict[str, list[str]] = {}
        for m in analysis.metrics(task):
            if m.name in unit.index and fmt.is_missing(unit[m.name]):
                by_reason.setdefault(_missing_reason(unit, m.name), []).append(m.name)
        for reason, names in by_reason.items():
            groups.setdefault((reason, tuple(names)), []).append(unit["unit"])
    return [f"- {', '.join(names)} ({_units_text(in_task, units)}): {fmt.cell(reason)}"
            for (reason, names), units in groups.items()]


def _units_text(in_task: pd.DataFrame, units: list[str]) -> str:
    if len(units) == 1:
        return f"`{units[0]}`"
    if len(units) == len(in_task):
        return f"all {len(units)} units"
    chosen = in_task[in_task["unit"].isin(units)]
    parts = []
    for strategy in strategy_order(chosen["strategy"]):
        seeds = chosen.loc[chosen["strategy"] == strategy, "seed"]
        parts.append(f"{strategy} seeds {', '.join(str(s) for s in seeds)}")
    return f"{len(units)} units: {'; '.join(parts)}"


def _samples_cell(unit: pd.Series, out_dir: Path) -> str:
    links = []
    for column, label in (("files.samples", "png"), ("files.samples_nifti", "nifti"),
                          ("files.closest", "nearest training")):
        relative = unit.get(column)
        if not fmt.is_missing(relative):
            links.append(fmt.link(Path(unit["run_dir"]) / relative, out_dir, label))
    return " ".join(links) or fmt.MISSING


def _units_table(analysis: Analysis, task: str, out_dir: Path) -> str:
    in_task = analysis.in_task(task)
    reached = analysis.convergence.set_index("unit")["steps_to_target"]
    has_curve = analysis.convergence.set_index("unit")["has_curve"]
    rows = []
    for strategy in strategy_order(in_task["strategy"]):
        for _, unit in in_task[in_task["strategy"] == strategy].iterrows():
            best = fmt.num(unit[lead("best")])
            if not fmt.is_missing(unit[lead("best")]) and not fmt.is_missing(unit[lead("best_step")]):
                best += f" (step {int(unit[lead('best_step')])})"
            target = (fmt.num(reached[unit["unit"]], 0) if has_curve[unit["unit"]]
                      and not fmt.is_missing(reached[unit["unit"]])
                      else "not reached" if has_curve[unit["unit"]] else fmt.MISSING)
            rows.append([strategy, str(unit["seed"]), unit["status"], fmt.num(unit[PRIMARY_METRIC]),
                         best, fmt.num(unit[lead("init")]), fmt.num(unit["inception_fid"]),
                         fmt.num(unit["coverage"], 3), target, unit_events(unit) or "none",
                         fmt.num(unit["steps"], 0), fmt.num(unit["seconds"], 1),
                         _samples_cell(unit, out_dir)])
    return table(["strategy", "seed", "status", "final FID", "best FID", "FID at step 0",
                  "Inception FID", "coverage", "steps to target", "events", "steps", "seconds",
                  "samples"], rows)


FIGURE_CAPTIONS = {"curves": "Domain FID during training (mean over seeds, band: min–max)",
                   "flops": "Domain FID against cumulative FLOPs, pretext included (mean over "
                            "seeds; scratch continues to the others' budgets)",
                   "metrics": "Key metrics (mean over seeds, 95% bootstrap interval)",
                   "modes": "Share of samples per known mode, real against each strategy (the "
                            "mode classifier's reading of the final samples, seeds pooled)",
                   "samples": "Samples (lowest seed of each strategy) beside real held-out images",
                   "stability": "Final domain FID per hyper-parameter draw (grey lines join a "
                                "draw's units; colour: the unit's health)"}


def task_section(analysis: Analysis, task: str, out_dir: Path,
                 figures: dict[str, Path]) -> str:
    in_task = analysis.in_task(task)
    status = analysis.status[analysis.status["task"] == task]
    parts = [f"## Task {task_label(in_task, task)}", _reference_line(in_task),
             _strategy_table(status)]
    warnings = _seed_warnings(analysis, task, status)
    if warnings:
        parts.append("\n".join(warnings))
    parts += ["### Metrics", "Mean ± std over seeds (n = seeds with a value). ↓ lower is "
              "better, ↑ higher is better. Floor: real validation images scored against the "
              "test images, what a perfect generator would get; ceiling: the untrained "
              "generator.", metrics_table(analysis, task),
              f"### Against {BASELINE}"]
    comparisons = analysis.comparisons[task]
    if comparisons:
        parts.append(comparisons_table(comparisons, leading_scale(in_task).smallest_effect))
    elif BASELINE not in set(in_task["strategy"]):
        parts.append(f"No {BASELINE} runs in this task: no comparison possible.")
    else:
        parts.append("Nothing to compare: no other strategy, or no metric with values.")

    def lookup(strategy: str, name: str) -> dict | None:
        return analysis.value(task, strategy, name)

    def mean(strategy: str, name: str) -> float | None:
        return (lookup(strategy, name) or {}).get("mean")

    parts += ["### Divergence and mode collapse",
              events_section(in_task, analysis.flags[analysis.flags["task"] == task], lookup),
              "### Convergence",
              convergence_section(analysis.convergence[analysis.convergence["task"] == task],
                                  mean)]
    moved = movement_table(in_task)
    if moved:
        parts += ["### How far training moved the weights", moved]
    for title, lines in (("Diverged and failed units", _problems(in_task)),
                         (f"Missing metrics (shown as {fmt.MISSING})",
                          _missing_metrics(analysis, task))):
        if lines:
            parts.append(f"{title}:\n\n" + "\n".join(lines))
    if figures:
        parts.append("### Figures")
        parts += [f"![{FIGURE_CAPTIONS[kind]}, {task}]({fmt.relative(path, out_dir)})"
                  for kind, path in figures.items()]
    parts += ["### Units", _units_table(analysis, task, out_dir)]
    return "\n\n".join(parts)
