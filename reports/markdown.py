"""report.md: set-up, one section per task, findings. Every number comes from the frame."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from reports import fmt
from reports.findings import findings_section
from reports.fmt import table
from reports.tables import compare_task, summarize
from reports.task_section import task_section

TITLE = "# Initialization strategies for noise-to-image GANs: benchmark report"


def _header(frame: pd.DataFrame, run_dirs: list[Path], out_dir: Path) -> str:
    dirs = ", ".join(f"`{fmt.relative(d, out_dir)}`" for d in run_dirs)
    counts = frame["status"].value_counts()
    status = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("ok", "diverged", "failed"))
    return (f"{TITLE}\n\nRun directories: {dirs}. {len(frame)} units ({status}). "
            "FID: lower is better.")


def _keyed_values(frame: pd.DataFrame, prefix: str, missing: str) -> str:
    """`name value` for every `prefix.name` column, e.g. versions.torch -> `torch 2.13.0`."""
    parts = []
    for column in (c for c in frame.columns if c.startswith(prefix)):
        values = fmt.distinct(frame, column)
        parts.append(f"{column[len(prefix):]} {' / '.join(map(str, values)) or missing}")
    return ", ".join(parts) or fmt.MISSING


def _setup_section(frame: pd.DataFrame) -> str:
    lines = [
        "## Set-up",
        "",
        f"- Profile: {fmt.values_text(fmt.distinct(frame, 'settings.profile'))}",
        f"- Device: {fmt.values_text(fmt.distinct(frame, 'settings.device'))}",
        f"- Precision: {fmt.values_text(fmt.distinct(frame, 'settings.precision'))}",
        f"- Versions: {_keyed_values(frame, 'versions.', fmt.MISSING)}",
        # A null hardware field means "not present" (e.g. gpu: null on a CPU machine).
        f"- Hardware: {_keyed_values(frame, 'hardware.', 'none')}",
        "",
    ]
    rows = []
    for task in sorted(frame["task"].unique()):
        in_task = frame[frame["task"] == task]
        rows.append([task] + [fmt.values_text(fmt.distinct(in_task, c)) for c in (
            "settings.dims", "settings.image_size", "settings.steps", "settings.batch_size",
            "settings.data_fingerprint", "settings.data_seed", "settings.pretext_seed",
            "reference.fid_samples", "reference.feature_net")])
    lines.append(table(["task", "dims", "image size", "steps", "batch size", "data fingerprint",
                        "data seed", "pretext seed", "FID samples", "feature network"], rows))
    lines += ["", "### Pretext models: cost and translation quality", "", _pretext_table(frame)]
    return "\n".join(lines)


def _pretext_table(frame: pd.DataFrame) -> str:
    names = sorted({c.split(".")[1] for c in frame.columns
                    if c.startswith("pretexts.") and c.count(".") >= 2})
    rows = []
    for task in sorted(frame["task"].unique()):
        in_task = frame[frame["task"] == task]
        for name in names:
            prefix = f"pretexts.{name}."
            columns = [c for c in in_task.columns if c.startswith(prefix)]
            used = in_task[in_task[columns].notna().any(axis=1)]
            # Strategies and seeds share pretext artifacts: one line per artifact key.
            key = prefix + "key"
            used = used.drop_duplicates(subset=[key]) if key in columns else used.head(1)
            for _, unit in used.iterrows():
                rows.append([task, name, fmt.cell(unit.get(prefix + "key")),
                             fmt.num(unit.get(prefix + "steps"), 0),
                             fmt.num(unit.get(prefix + "seconds"), 1),
                             fmt.num(unit.get(prefix + "ssim"), 3),
                             fmt.num(unit.get(prefix + "psnr"), 2)])
    if not rows:
        return "No pretext models were used."
    return table(["task", "pretext", "key", "steps", "seconds", "SSIM", "PSNR (dB)"], rows)


def render(frame: pd.DataFrame, out_dir: Path, run_dirs: list[Path], notes: list[str],
           figures: dict[str, Path] | None = None) -> str:
    """The whole report as markdown text."""
    figures = figures or {}
    summary = summarize(frame)
    tasks = sorted(frame["task"].unique())
    comparisons = {task: compare_task(frame[frame["task"] == task]) for task in tasks}
    parts = [_header(frame, run_dirs, out_dir), _setup_section(frame)]
    for task in tasks:
        parts.append(task_section(frame, task, summary[summary["task"] == task],
                                   comparisons[task], out_dir, figures.get(task)))
    parts.append(findings_section(frame, summary, comparisons))
    if notes:
        parts.append("## Notes on the run store\n\n" + "\n".join(f"- {n}" for n in notes))
    return "\n\n".join(parts) + "\n"
