"""FID-over-training curves per task, mean over seeds per strategy, from the curve CSVs."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd

from bench.atomic import write_atomic
from reports.fmt import distinct, is_missing
from reports.tables import strategy_order

FIGURES_DIR = "figures"


def _read_curve(path: Path) -> pd.DataFrame | None:
    try:
        curve = pd.read_csv(path)
    except (OSError, ValueError):
        return None
    if not {"step", "fid"} <= set(curve.columns):
        return None
    curve["fid"] = pd.to_numeric(curve["fid"], errors="coerce")
    return curve.dropna(subset=["fid"])[["step", "fid"]]


def _mean_curves(in_task: pd.DataFrame, notes: list[str]) -> dict[str, pd.Series]:
    curves: dict[str, pd.Series] = {}
    for strategy in strategy_order(in_task["strategy"]):
        parts = []
        for _, unit in in_task[in_task["strategy"] == strategy].iterrows():
            relative = unit.get("files.curve")
            if is_missing(relative):
                continue
            curve = _read_curve(Path(unit["run_dir"]) / relative)
            if curve is None:
                notes.append(f"curve of {unit['unit']} missing or unreadable: {relative}")
            elif len(curve):
                parts.append(curve)
        if parts:
            # Diverged seeds stop early: later steps average over the seeds still running.
            curves[strategy] = pd.concat(parts).groupby("step")["fid"].mean()
    return curves


def plot_fid_curves(frame: pd.DataFrame, out_dir: Path) -> tuple[dict[str, Path], list[str]]:
    """Write one PNG per task that has curves; return {task: path} and notes on missing curves."""
    # Figure + Agg canvas directly: no pyplot, so no global backend or figure state is touched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    paths: dict[str, Path] = {}
    notes: list[str] = []
    for task in sorted(frame["task"].unique()):
        in_task = frame[frame["task"] == task]
        curves = _mean_curves(in_task, notes)
        if not curves:
            continue
        figure = Figure(figsize=(6, 4))
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        for strategy, series in curves.items():
            axes.plot(series.index, series.to_numpy(), label=strategy)
        for label, column, style in (("floor", "reference.fid_floor", ":"),
                                     ("ceiling", "reference.fid_ceiling", "--")):
            for value in distinct(in_task, column)[:1]:
                axes.axhline(float(value), color="grey", linestyle=style, label=label)
        if all((s > 0).all() for s in curves.values()):
            axes.set_yscale("log")  # FID falls over orders of magnitude early in training
        axes.set(xlabel="step", ylabel="FID (mean over seeds)", title=task)
        axes.legend(fontsize="small")
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", task)
        paths[task] = write_atomic(out_dir / FIGURES_DIR / f"fid_{safe}.png", buffer.getvalue())
    return paths, notes
