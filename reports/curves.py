"""The evaluation curves of every unit (curve CSVs), read once for the figures and convergence."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.store import CURVE_COLUMNS
from reports.fmt import is_missing


def read_curve(path: Path) -> pd.DataFrame | None:
    """The curve with numeric columns (blank or non-numeric cells are NaN); None if unreadable."""
    try:
        curve = pd.read_csv(path)
    except (OSError, ValueError):
        return None
    if "step" not in curve.columns:
        return None
    # Older run stores wrote only the first three columns; absent ones are simply not there.
    for column in (c for c in CURVE_COLUMNS if c in curve.columns):
        curve[column] = pd.to_numeric(curve[column], errors="coerce")
    return curve.dropna(subset=["step"]).sort_values("step", kind="mergesort")


def load_curves(frame: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """{unit: curve} for every unit whose curve file reads, and a note for each that does not."""
    curves: dict[str, pd.DataFrame] = {}
    notes: list[str] = []
    for _, unit in frame.iterrows():
        relative = unit.get("files.curve")
        if is_missing(relative):
            continue  # a failed unit has no curve, and says why in its reason
        curve = read_curve(Path(unit["run_dir"]) / relative)
        if curve is None:
            notes.append(f"curve of {unit['unit']} missing or unreadable: {relative}")
        else:
            curves[unit["unit"]] = curve
    return curves, notes
