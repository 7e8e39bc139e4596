"""One task's section of report.md: reference line, strategy table, comparisons, problems, units."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from reports import fmt
from reports.fmt import table, task_label
from reports.stats import Comparison
from reports.tables import BASELINE, MIN_SEEDS, strategy_order

# fid_best_step is printed next to fid_best, so it needs no reason line of its own.
SHOWN_METRICS = ("fid_final", "fid_best", "fid_init")


def _reference_line(in_task: pd.DataFrame) -> str:
    def value(column: str) -> str:
        values = [float(v) for v in fmt.distinct(in_task, column)]
        if len(values) > 1:
            return f"{fmt.num(min(values))}–{fmt.num(max(values))} (differs across units)"
        return fmt.num(values[0]) if values else fmt.MISSING
    return (f"real val vs real test (floor): {value('reference.fid_floor')}; "
            f"untrained generator (ceiling): {value('reference.fid_ceiling')}")


def _transfer_text(row: pd.Series) -> str:
    low, high, trainable = row["transfer_min"], row["transfer_max"], row["gd_parameters"]
    if fmt.is_missing(low):
        return fmt.MISSING
    text = fmt.integer(low) if low == high else f"{fmt.integer(low)}–{fmt.integer(high)}"
    if not fmt.is_missing(trainable) and trainable > 0:
        text += f" of {fmt.integer(trainable)} ({100 * high / trainable:.0f}%)"
    return text


def _strategy_table(summary: pd.DataFrame) -> str:
    rows = []
    for _, row in summary.iterrows():
        units = int(row["units"])
        rows.append([
            row["strategy"], str(row["seeds"]),
            f"{row['ok']} / {row['diverged']} / {row['failed']}",
            fmt.mean_std(row["fid_final_mean"], row["fid_final_std"], row["fid_final_n"], units),
            fmt.mean_std(row["fid_best_mean"], row["fid_best_std"], row["fid_best_n"], units),
            fmt.mean_std(row["fid_init_mean"], None, row["fid_init_n"], units),
            _transfer_text(row),
        ])
    return table(["strategy", "seeds", "ok / diverged / failed", "final FID (mean ± std)",
                  "best FID (mean ± std)", "FID at step 0 (mean)", "parameters transferred (of G+D)"], rows)


def _seed_warnings(summary: pd.DataFrame) -> list[str]:
    return [f"> Warning: {row['strategy']} has only {row['fid_final_n']} seed(s) with a final "
            f"FID (of {row['units']} units): fewer than {MIN_SEEDS}, so its spread and any "
            "comparison are unreliable."
            for _, row in summary.iterrows() if row["fid_final_n"] < MIN_SEEDS]


def comparison_line(c: Comparison) -> str:
    seeds = f"{c.n} vs {c.n_baseline} seeds"
    if c.difference is None:
        return f"- {c.strategy} vs {c.baseline}: {fmt.MISSING} ({seeds}): {c.verdict}."
    interval = ("" if c.low is None else
                f", 95% CI {fmt.num(c.low)} to {fmt.num(c.high)}")
    return (f"- {c.strategy} vs {c.baseline}: final FID difference {fmt.num(c.difference)} "
            f"({seeds}{interval}): {c.verdict}.")


def _problems(in_task: pd.DataFrame) -> list[str]:
    lines = []
    for _, unit in in_task[in_task["status"] != "ok"].iterrows():
        where = ("" if fmt.is_missing(unit["diverged_step"])
                 else f" at step {int(unit['diverged_step'])}")
        reason = "no reason recorded" if fmt.is_missing(unit["reason"]) else unit["reason"]
        lines.append(f"- `{unit['unit']}`: {unit['status']}{where}: {fmt.cell(reason)}")
    return lines


def _missing_metrics(in_task: pd.DataFrame) -> list[str]:
    lines = []
    for _, unit in in_task.iterrows():
        for metric in SHOWN_METRICS:
            if not fmt.is_missing(unit[metric]):
                continue
            reason = unit.get(f"metrics_missing.{metric}")
            if fmt.is_missing(reason):
                reason = (f"unit {unit['status']}: {unit['reason']}" if unit["status"] != "ok"
                          else "no reason recorded")
            lines.append(f"- `{unit['unit']}` {metric}: {fmt.cell(reason)}")
    return lines


def _samples_cell(unit: pd.Series, out_dir: Path) -> str:
    links = []
    for column, label in (("files.samples", "png"), ("files.samples_nifti", "nifti")):
        relative = unit.get(column)
        if not fmt.is_missing(relative):
            links.append(fmt.link(Path(unit["run_dir"]) / relative, out_dir, label))
    return " ".join(links) or fmt.MISSING


def _units_table(in_task: pd.DataFrame, out_dir: Path) -> str:
    rows = []
    for strategy in strategy_order(in_task["strategy"]):
        for _, unit in in_task[in_task["strategy"] == strategy].iterrows():
            best = fmt.num(unit["fid_best"])
            if not fmt.is_missing(unit["fid_best"]) and not fmt.is_missing(unit["fid_best_step"]):
                best += f" (step {int(unit['fid_best_step'])})"
            rows.append([strategy, str(unit["seed"]), unit["status"], fmt.num(unit["fid_final"]),
                         best, fmt.num(unit["fid_init"]), fmt.num(unit["steps"], 0),
                         fmt.num(unit["seconds"], 1), _samples_cell(unit, out_dir)])
    return table(["strategy", "seed", "status", "final FID", "best FID", "FID at step 0",
                  "steps", "seconds", "samples"], rows)


def task_section(frame: pd.DataFrame, task: str, summary: pd.DataFrame,
                 comparisons: list[Comparison], out_dir: Path, figure: Path | None) -> str:
    in_task = frame[frame["task"] == task]
    parts = [f"## Task {task_label(in_task, task)}", _reference_line(in_task),
             _strategy_table(summary)]
    warnings = _seed_warnings(summary)
    if warnings:
        parts.append("\n".join(warnings))
    if comparisons:
        parts.append(f"Final FID against {BASELINE} (difference of means, strategy minus "
                     f"{BASELINE}; negative is better; 95% bootstrap interval over seeds):\n\n"
                     + "\n".join(comparison_line(c) for c in comparisons))
    elif BASELINE not in set(in_task["strategy"]):
        parts.append(f"No {BASELINE} runs in this task: no comparison possible.")
    for title, lines in (("Diverged and failed units", _problems(in_task)),
                         (f"Missing metrics (shown as {fmt.MISSING})", _missing_metrics(in_task))):
        if lines:
            parts.append(f"{title}:\n\n" + "\n".join(lines))
    if figure is not None:
        parts.append(f"![FID during training, {task}]({fmt.relative(figure, out_dir)})")
    parts.append("Units:\n\n" + _units_table(in_task, out_dir))
    return "\n\n".join(parts)
