"""Read `results.jsonl` from one or more run directories into one flat table.

Merging is strict: shards may only be combined when they measured the same thing (same
profile, same data per task) and never overlap, because a silently mixed table would make
every comparison in the report meaningless.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import BenchError
from bench.store import RunStore, read_jsonl
from reports.catalog import METRICS

STATUSES = ("ok", "diverged", "failed")
REQUIRED_KEYS = ("unit", "task", "strategy", "seed", "status")
# Always present in the table, so downstream code and CSV readers can rely on them.
TOP_COLUMNS = (
    "unit", "task", "strategy", "seed", "status", "reason", "diverged_step",
    "steps", "train_seconds", "seconds", "finished_at", "run_dir",
)
# Every metric the report knows, numeric even when no row has it (older harness versions).
METRIC_COLUMNS = tuple(m.name for m in METRICS)


@dataclass
class Loaded:
    """Rows of all run directories (each tagged with its `run_dir`) and notes for the report."""

    rows: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


def read_run_dir(run_dir: Path) -> Loaded:
    """Parse one run directory's results; a unit written twice keeps its last row."""
    path = RunStore(run_dir).results
    by_unit: dict[str, tuple[int, dict[str, Any]]] = {}
    notes: list[str] = []
    for lineno, row in read_jsonl(path):
        _check_row(path, lineno, row)
        unit = row["unit"]
        if unit in by_unit:
            note = (f"{path}: unit {unit} appears more than once (lines {by_unit[unit][0]} "
                    f"and {lineno}); keeping the last one")
            warnings.warn(note, stacklevel=2)
            notes.append(note)
        row["run_dir"] = str(run_dir)
        by_unit[unit] = (lineno, row)
    if not by_unit:
        raise BenchError(f"no results in {run_dir}: run `bench run ... --out {run_dir}` first")
    return Loaded([row for _, row in by_unit.values()], notes)


def _check_row(path: Path, lineno: int, row: Any) -> None:
    if not isinstance(row, dict):
        raise BenchError(f"{path} line {lineno}: expected a JSON object per line")
    missing = [key for key in REQUIRED_KEYS if row.get(key) is None]
    if missing:
        raise BenchError(f"{path} line {lineno}: missing {', '.join(missing)}")
    if row["status"] not in STATUSES:
        raise BenchError(f"{path} line {lineno}: unknown status {row['status']!r} "
                         f"(expected one of {', '.join(STATUSES)})")


def load_rows(run_dirs: list[Path]) -> Loaded:
    """Read and merge several run directories, refusing merges that would mix experiments."""
    if not run_dirs:
        raise BenchError("no run directories given: pass at least one RUN_DIR")
    seen_dirs: dict[Path, Path] = {}
    for run_dir in run_dirs:
        resolved = Path(run_dir).resolve()
        if resolved in seen_dirs:
            raise BenchError(f"run directory {run_dir} given twice")
        seen_dirs[resolved] = run_dir

    merged = Loaded(rows=[])
    unit_dir: dict[str, str] = {}
    for run_dir in run_dirs:
        loaded = read_run_dir(Path(run_dir))
        for row in loaded.rows:
            if row["unit"] in unit_dir:
                raise BenchError(f"unit {row['unit']} is in both {unit_dir[row['unit']]} and "
                                 f"{row['run_dir']}: remove it from one of them")
            unit_dir[row["unit"]] = row["run_dir"]
        merged.rows.extend(loaded.rows)
        merged.notes.extend(loaded.notes)
    _check_same_experiment(merged.rows)
    return merged


def _check_same_experiment(rows: list[dict[str, Any]]) -> None:
    # First (value, dir) seen per key; a different value later means mixed experiments.
    first: dict[tuple[str, ...], tuple[Any, str]] = {}
    for row in rows:
        settings = row.get("settings") or {}
        reference = row.get("reference") or {}
        task = row["task"]
        # Shards trained their own domain encoders: the same key on another machine (GPU, other
        # library versions) can still hold other weights, and then other FIDs.
        device = settings.get("device")
        tuned = row.get("tuned") or {}
        draw = row.get("draw") or {}
        checks = [(("profile",), "profile", settings.get("profile")),
                  (("study",), "kind of study (a comparison run, or stability draws)",
                   "stability" if draw else "comparison"),
                  (("draw seed",), "stability draw seed (--draw-seed)", draw.get("seed")),
                  # `--precision auto` chooses per machine: shards on other CPUs can differ.
                  (("precision",), "precision (give every shard the same --precision bf16 or "
                   "fp32)", settings.get("precision")),
                  # Rows from before recipes existed trained with what is now `plain`.
                  (("recipe",), "training recipe (--recipe)", settings.get("recipe", "plain")),
                  (("pretext_shared",), "pretext design (one per seed, or --pretext-seed)",
                   settings.get("pretext_shared")),
                  # A failed unit never trained: its settings are the untuned ones.
                  # Each stability draw sets its own hyper-parameters.
                  (("harness", task, row["strategy"], draw.get("index")),
                   f"harness settings of {row['strategy']} on {task}"
                   + (f", draw {draw['index']}" if draw else ""), None if settings.get("harness") is None
                   or row["status"] == "failed"
                   else json.dumps(settings["harness"], sort_keys=True)),
                  (("device",), "device type", None if device is None else str(device).split(":")[0]),
                  (("tuned", task, row["strategy"]), f"tuning source of {row['strategy']} on {task}",
                   f"{tuned.get('storage')} {tuned.get('study')} trial {tuned.get('trial')}"
                   if tuned else "untuned"),
                  (("fingerprint", task), f"data_fingerprint of task {task}",
                   settings.get("data_fingerprint")),
                  (("domain", task), f"domain encoder weights of task {task} (copy one "
                   "$BENCH_CACHE/domain to every machine)", reference.get("domain_weights")),
                  (("inception", task), f"Inception network of task {task}",
                   reference.get("inception_net"))]
        for name, info in (row.get("pretexts") or {}).items():
            seed = info.get("seed", settings.get("pretext_seed"))
            checks.append((("pretext", task, name, seed), f"{name} pretext weights of task {task}, "
                           f"seed {seed} (copy $BENCH_CACHE/pretexts to every machine, or shard "
                           "by seed)", info.get("weights")))
        for key, label, value in checks:
            if value is None:
                continue
            if key not in first:
                first[key] = (value, row["run_dir"])
            elif first[key][0] != value:
                old_value, old_dir = first[key]
                raise BenchError(f"cannot merge runs with different {label}: {old_dir} has "
                                 f"{old_value!r}, {row['run_dir']} has {value!r}; "
                                 "report them separately")


def _metric_column(row: dict[str, Any], name: str) -> str:
    # Keep the prefix only where a bare name would clash with a top-level key.
    return f"metrics.{name}" if name in row else name


def metric_names(rows: list[dict[str, Any]]) -> list[str]:
    """The table columns of every metric any row records, in order of first appearance."""
    names: dict[str, None] = {}
    for row in rows:
        if isinstance(row.get("metrics"), dict):
            names.update((_metric_column(row, name), None) for name in row["metrics"])
    return list(names)


def flatten_row(row: dict[str, Any]) -> dict[str, Any]:
    """Nested dicts become dotted columns; metrics lose their prefix (fid_final)."""
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if key == "metrics" and isinstance(value, dict):
            for name, metric in value.items():
                flat[_metric_column(row, name)] = metric
        else:
            _flatten_into(flat, key, value)
    return flat


def _flatten_into(flat: dict[str, Any], prefix: str, value: Any) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten_into(flat, f"{prefix}.{key}", inner)
    elif isinstance(value, list):
        flat[prefix] = json.dumps(value)  # a CSV cell holds one value
    else:
        flat[prefix] = value


def to_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per unit, sorted by task, strategy, seed; fixed columns first, the rest by name."""
    frame = pd.DataFrame([flatten_row(row) for row in rows])
    for column in TOP_COLUMNS + METRIC_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    for column in METRIC_COLUMNS:
        # None -> NaN, so an all-missing metric is still a numeric column.
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    rest = sorted(c for c in frame.columns if c not in TOP_COLUMNS + METRIC_COLUMNS)
    frame = frame[list(TOP_COLUMNS + METRIC_COLUMNS) + rest]
    frame = frame.sort_values(["task", "strategy", "seed"], kind="mergesort")
    return frame.reset_index(drop=True)


def load_results(run_dirs: list[Path]) -> pd.DataFrame:
    """The merged, flattened results of `run_dirs` (see `load_rows` for the merge rules)."""
    return to_frame(load_rows([Path(d) for d in run_dirs]).rows)
