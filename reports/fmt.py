"""Number and cell formatting for the markdown report; a missing value is always "—"."""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Any

import pandas as pd

MISSING = "—"


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and other containers
        return False


def num(value: Any, digits: int = 2) -> str:
    if is_missing(value):
        return MISSING
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if not math.isfinite(float(value)):
            return MISSING
        return f"{float(value):,.{digits}f}"
    return str(value)


def integer(value: Any) -> str:
    return MISSING if is_missing(value) else f"{int(value):,}"


def mean_std(mean: Any, std: Any, n: int, units: int, digits: int = 2) -> str:
    """`mean ± std (n=…)`, saying "of units" when only some of the units have the value."""
    if n == 0 or is_missing(mean):
        return MISSING
    text = num(mean, digits) if is_missing(std) else f"{num(mean, digits)} ± {num(std, digits)}"
    return f"{text} (n={n})" if n == units else f"{text} (n={n} of {units})"


def p_value(value: Any) -> str:
    if is_missing(value):
        return MISSING
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def cell(value: Any) -> str:
    """Text safe inside a markdown table cell."""
    text = MISSING if is_missing(value) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def values_text(values: list[Any], empty: str = MISSING) -> str:
    return ", ".join(str(v) for v in values) if values else empty


def distinct(frame: pd.DataFrame, column: str) -> list[Any]:
    """Distinct non-missing values of a column, in order of appearance."""
    if column not in frame.columns:
        return []
    out: list[Any] = []
    for value in frame[column]:
        if not is_missing(value) and value not in out:
            out.append(value)
    return out


def dims(in_task: pd.DataFrame) -> int | None:
    """The task's dimensionality (2 or 3); None for rows that do not record it."""
    values = distinct(in_task, "settings.dims")
    return int(values[0]) if values else None


def reference_value(frame: pd.DataFrame, column: str, digits: int = 2) -> str:
    """A reference number all units should share; a range, said so, when they do not."""
    values = [float(v) for v in distinct(frame, column)]
    if len(values) > 1:
        return f"{num(min(values), digits)}–{num(max(values), digits)} (differs across units)"
    return num(values[0], digits) if values else MISSING


def relative(target: Path, out_dir: Path) -> str:
    """`target` as a forward-slash path relative to the report's folder."""
    return Path(os.path.relpath(Path(target).resolve(), Path(out_dir).resolve())).as_posix()


def link(target: Path, out_dir: Path, label: str) -> str:
    """A markdown link relative to the report's folder, flagged when the file is absent."""
    path = relative(target, out_dir)
    href = f"<{path}>" if " " in path else path
    return f"[{label}]({href})" + ("" if target.is_file() else " (file missing)")


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def task_label(in_task: pd.DataFrame, task: str) -> str:
    dims = distinct(in_task, "settings.dims")
    return f"{task} ({'/'.join(f'{d}D' for d in dims)})" if dims else task
