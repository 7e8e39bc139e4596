"""Task specifications: tasks are data (TOML files), read into frozen dataclasses.

Built-in tasks live in `datasets/tasks/*.toml`; `get_task` also accepts a path to a user's own
TOML file with the same format.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ground.errors import BenchError

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
# Array axis of each slicing plane in the generated volumes (see anatomy.py for the orientation).
SLICE_AXES: dict[str, int] = {"axial": 0, "coronal": 1, "sagittal": 2}

_TOP_KEYS = {"name", "description", "source", "dims", "target", "other", "modalities", "splits",
             "slicing", "data_root", "t1_pattern", "t2_pattern", "spacing", "train_subjects"}
GENERATED_SOURCES = ("mni-phantom",)
REAL_MODALITIES = ("t1", "t2")
_SLICING_KEYS = {"axis", "per_subject", "min_brain_fraction"}


@dataclass(frozen=True)
class Slicing:
    """How a 2D task cuts each subject's volume into images."""

    axis: str  # "axial", "coronal" or "sagittal"
    per_subject: int  # slices taken from every subject, evenly spaced
    min_brain_fraction: float  # slices whose brain covers less of the slice are never used


@dataclass(frozen=True)
class TaskSpec:
    name: str
    description: str
    source: str
    dims: int  # 2 (slices) or 3 (volumes)
    target: str  # the modality the noise-to-image GAN generates
    other: str  # the paired modality the image-to-image pretext translates from
    modalities: tuple[str, ...]
    # Subjects per split; excluded from the hash because dicts are unhashable.
    splits: dict[str, int] = field(hash=False)
    slicing: Slicing | None = None  # required for 2D tasks, absent for 3D
    path: Path | None = field(default=None, compare=False)
    # Real sources (datasets/discover.py): where the scans are, how paired-folder names the two
    # contrasts, and the isotropic spacing (mm) scans are resampled to before resizing.
    data_root: Path | None = None
    t1_pattern: str | None = None
    t2_pattern: str | None = None
    spacing: float = 1.0
    # The training-set-size axis (datasets/subsets.py): each N its own task variant. It decides
    # which training subjects a run uses, not the task's data.
    train_subjects: tuple[int, ...] = ()

    def content(self) -> dict[str, Any]:
        """Everything that decides the data (not the file's location or its description)."""
        out = dataclasses.asdict(self)
        out.pop("path")
        out.pop("description")
        out.pop("train_subjects")
        out["modalities"] = list(self.modalities)
        if self.source in GENERATED_SOURCES:  # keeps generated tasks' cache keys as they were
            for key in ("data_root", "t1_pattern", "t2_pattern", "spacing"):
                out.pop(key)
        else:
            out["data_root"] = str(self.data_root)
        return out


def _builtin_dir() -> Path:
    return Path(str(resources.files("datasets") / "tasks"))


def _require(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in table:
        raise BenchError(f"{where}: missing key '{key}'")
    value = table[key]
    # bool is an int subclass; a 'true' where a count belongs is a typo, not a number.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BenchError(f"{where}: '{key}' has the wrong type ({value!r})")
    return value


def _parse_slicing(table: Any, where: str) -> Slicing:
    if not isinstance(table, dict):
        raise BenchError(f"{where}: [slicing] must be a table")
    unknown = set(table) - _SLICING_KEYS
    if unknown:
        raise BenchError(f"{where}: unknown keys in [slicing]: {', '.join(sorted(unknown))}")
    axis = _require(table, "axis", str, where)
    if axis not in SLICE_AXES:
        raise BenchError(f"{where}: slicing axis '{axis}' must be one of {', '.join(SLICE_AXES)}")
    per_subject = _require(table, "per_subject", int, where)
    if per_subject < 1:
        raise BenchError(f"{where}: slicing per_subject must be >= 1, got {per_subject}")
    fraction = float(table.get("min_brain_fraction", 0.15))
    if not 0.0 <= fraction < 1.0:
        raise BenchError(f"{where}: min_brain_fraction must be in [0, 1), got {fraction}")
    return Slicing(axis=axis, per_subject=per_subject, min_brain_fraction=fraction)


def parse_splits(table: Any, where: str) -> dict[str, int]:
    """Subjects per split, in the fixed order train, val, test."""
    if not isinstance(table, dict) or set(table) != set(SPLIT_NAMES):
        raise BenchError(f"{where}: splits must give exactly train, val and test subject counts, "
                         f"got {table!r}")
    counts: dict[str, int] = {}
    for name in SPLIT_NAMES:
        n = table[name]
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise BenchError(f"{where}: split '{name}' needs a positive number of subjects, "
                             f"got {n!r}")
        counts[name] = n
    return counts


def load_task_file(path: Path) -> TaskSpec:
    where = str(path)
    try:
        with open(path, "rb") as f:
            table = tomllib.load(f)
    except FileNotFoundError:
        raise BenchError(f"task file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise BenchError(f"{where}: not valid TOML ({e})") from None
    unknown = set(table) - _TOP_KEYS
    if unknown:
        raise BenchError(f"{where}: unknown keys: {', '.join(sorted(unknown))}")
    dims = _require(table, "dims", int, where)
    if dims not in (2, 3):
        raise BenchError(f"{where}: dims must be 2 or 3, got {dims}")
    modalities = tuple(_require(table, "modalities", list, where))
    if not modalities or not all(isinstance(m, str) for m in modalities):
        raise BenchError(f"{where}: modalities must be a list of names, got {list(modalities)}")
    target = _require(table, "target", str, where)
    other = _require(table, "other", str, where)
    for key, value in (("target", target), ("other", other)):
        if value not in modalities:
            raise BenchError(f"{where}: {key} '{value}' is not among modalities {list(modalities)}")
    if target == other:
        raise BenchError(f"{where}: target and other must differ, both are '{target}'")
    source = _require(table, "source", str, where)
    real = _real_fields(table, source, modalities, path, where)
    slicing = None
    if dims == 2:
        if "slicing" not in table:
            raise BenchError(f"{where}: a 2D task needs a [slicing] table (axis, per_subject)")
        slicing = _parse_slicing(table["slicing"], where)
    elif "slicing" in table:
        raise BenchError(f"{where}: [slicing] only applies to 2D tasks (dims = 2)")
    return TaskSpec(
        name=str(table.get("name", path.stem)),
        description=str(table.get("description", "")),
        source=source,
        dims=dims,
        target=target,
        other=other,
        modalities=modalities,
        # Real data may leave the split sizes to the number of usable subjects (70/15/15).
        splits=(parse_splits(table["splits"], where) if "splits" in table or not real
                else {}),
        slicing=slicing,
        path=path,
        train_subjects=parse_train_subjects(table.get("train_subjects", []), where),
        **real,
    )


def parse_train_subjects(values: Any, where: str) -> tuple[int, ...]:
    """Distinct positive subject counts, ascending."""
    if not isinstance(values, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
        raise BenchError(f"{where}: train_subjects must be a list of positive subject counts, "
                         f"got {values!r}")
    return tuple(sorted(set(values)))


def _real_fields(table: dict[str, Any], source: str, modalities: tuple[str, ...], path: Path,
                 where: str) -> dict[str, Any]:
    """data_root (relative to the task file), patterns and spacing of a real source."""
    from datasets.discover import LAYOUTS
    keys = ("data_root", "t1_pattern", "t2_pattern", "spacing")
    if source not in GENERATED_SOURCES + LAYOUTS:
        raise BenchError(f"{where}: unknown source '{source}'; known: "
                         f"{', '.join(GENERATED_SOURCES + LAYOUTS)}")
    if source in GENERATED_SOURCES:
        given = [k for k in keys if k in table]
        if given:
            raise BenchError(f"{where}: {', '.join(given)} only apply to real sources, not "
                             f"'{source}'")
        return {}
    unknown = [m for m in modalities if m not in REAL_MODALITIES]
    if unknown:
        raise BenchError(f"{where}: unknown modality name(s) {unknown}: real sources provide "
                         f"{' and '.join(REAL_MODALITIES)}")
    root = Path(_require(table, "data_root", str, where)).expanduser()
    for key in ("t1_pattern", "t2_pattern"):
        if key in table:
            _require(table, key, str, where)
    spacing = table.get("spacing", 1.0)
    if isinstance(spacing, bool) or not isinstance(spacing, (int, float)) or spacing <= 0:
        raise BenchError(f"{where}: spacing must be a positive number of mm, got {spacing!r}")
    return {"data_root": root if root.is_absolute() else Path(path).parent / root,
            "t1_pattern": table.get("t1_pattern"), "t2_pattern": table.get("t2_pattern"),
            "spacing": float(spacing)}


def source_task(shape: TaskSpec, source: str, root: Path, t1_pattern: str | None = None,
                t2_pattern: str | None = None) -> TaskSpec:
    """A built-in task's shape (dims, slicing) on a real source: `--source NAME --data-root DIR`.
    Split sizes follow the usable subjects (70/15/15)."""
    from datasets.discover import LAYOUTS
    if source not in LAYOUTS:
        raise BenchError(f"unknown source '{source}'; known: {', '.join(LAYOUTS)}")
    return dataclasses.replace(
        shape, name=f"{source}-{shape.dims}d", source=source, splits={},
        description=(f"{shape.slicing.axis} slices" if shape.slicing else "whole volumes")
        + f" of the {source} scans in {root}; generate T1",
        data_root=Path(root).expanduser(), t1_pattern=t1_pattern, t2_pattern=t2_pattern,
        path=None)


def list_tasks() -> list[TaskSpec]:
    """The built-in tasks, sorted by name."""
    specs = [load_task_file(p) for p in sorted(_builtin_dir().glob("*.toml"))]
    return sorted(specs, key=lambda s: s.name)


def get_task(name_or_path: str) -> TaskSpec:
    """A built-in task by name, or a task read from a .toml file."""
    for spec in list_tasks():
        if spec.name == name_or_path:
            return spec
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix == ".toml" or candidate.is_file():
        return load_task_file(candidate)
    known = ", ".join(s.name for s in list_tasks())
    raise BenchError(f"unknown task '{name_or_path}'; known: {known} "
                     f"(or give a path to a .toml task file)")
