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

from bench.records import EvaluatorReference, UnitRecord, UnitSettings
from bench.store import RunStore
from ground.errors import BenchError
from reports.catalog import METRICS

# Always present in the table, so downstream code and CSV readers can rely on them.
TOP_COLUMNS = (
    "unit", "task", "strategy", "seed", "status", "reason", "diverged_step",
    "steps", "train_seconds", "seconds", "finished_at", "run_dir",
)
# Every metric the report knows, numeric even when no row has it (older harness versions).
METRIC_COLUMNS = tuple(m.name for m in METRICS)


@dataclass
class Loaded:
    """Records of all run directories (each with its `run_dir`) and notes for the report."""

    rows: list[UnitRecord]
    notes: list[str] = field(default_factory=list)


def read_run_dir(run_dir: Path) -> Loaded:
    """Parse one run directory's results; a unit written twice keeps its last row."""
    store = RunStore(run_dir)
    by_unit: dict[str, tuple[int, UnitRecord]] = {}
    notes: list[str] = []
    for lineno, record in store.records():
        if record.unit in by_unit:
            note = (f"{store.results}: unit {record.unit} appears more than once (lines "
                    f"{by_unit[record.unit][0]} and {lineno}); keeping the last one")
            warnings.warn(note, stacklevel=2)
            notes.append(note)
        record.run_dir = str(run_dir)
        by_unit[record.unit] = (lineno, record)
    if not by_unit:
        raise BenchError(f"no results in {run_dir}: run `bench run ... --out {run_dir}` first")
    return Loaded([record for _, record in by_unit.values()], notes)


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
        for record in loaded.rows:
            if record.unit in unit_dir:
                raise BenchError(f"unit {record.unit} is in both {unit_dir[record.unit]} and "
                                 f"{record.run_dir}: remove it from one of them")
            unit_dir[record.unit] = record.run_dir
        merged.rows.extend(loaded.rows)
        merged.notes.extend(loaded.notes)
    _check_same_experiment(merged.rows)
    return merged


def _identity(r: UnitRecord) -> list[tuple[tuple, str, Any]]:
    """(key, what it is, value) of everything two shards must share to be merged; None: the
    row does not say (older rows), which matches anything."""
    s = r.settings or UnitSettings()
    ref, draw = r.reference or EvaluatorReference(), r.draw
    checks = [(("profile",), "profile", s.profile),
              (("study",), "kind of study (a comparison run, or stability draws)",
               "stability" if draw else "comparison"),
              (("draw seed",), "stability draw seed (--draw-seed)", draw and draw.seed),
              # `--precision auto` chooses per machine: shards on other CPUs can differ.
              (("precision",), "precision (give every shard the same --precision bf16 or fp32)",
               s.precision),
              # Rows from before recipes existed trained with what is now `plain`.
              (("recipe",), "training recipe (--recipe)", s.recipe or "plain"),
              (("pretext_shared",), "pretext design (one per seed, or --pretext-seed)",
               s.pretext_shared),
              # A failed unit never trained: its settings are the untuned ones. Each stability
              # draw sets its own hyper-parameters.
              (("harness", r.task, r.strategy, draw and draw.index),
               f"harness settings of {r.strategy} on {r.task}"
               + (f", draw {draw.index}" if draw else ""),
               None if s.harness is None or r.status == "failed"
               else json.dumps(s.harness, sort_keys=True)),
              # Shards trained their own domain encoders: the same key on another machine (GPU,
              # other library versions) can still hold other weights, and then other FIDs.
              (("device",), "device type", s.device and s.device.split(":")[0]),
              (("tuned", r.task, r.strategy), f"tuning source of {r.strategy} on {r.task}",
               f"{r.tuned.storage} {r.tuned.study} trial {r.tuned.trial}" if r.tuned
               else "untuned"),
              (("fingerprint", r.task), f"data_fingerprint of task {r.task}",
               s.data_fingerprint),
              # Rows before schema 3 do not name their leading metric: the domain FID.
              (("leading", r.task), f"leading metric and its encoder of task {r.task} (score "
               "every shard with one version of bench)", ref.feature_net and
               f"{ref.leading or 'fid'} ({ref.feature_net.split(':')[0]})"),
              (("domain", r.task), f"domain encoder weights of task {r.task} (copy one "
               "$BENCH_CACHE/domain to every machine)", ref.domain_weights),
              (("inception", r.task), f"Inception network of task {r.task}", ref.inception_net)]
    for views, identity in (ref.encoders or {}).items():
        checks.append((("encoder", r.task, views), f"{views} domain encoder of task {r.task} "
                       "(copy one $BENCH_CACHE/domain to every machine)", identity))
    for name, info in (r.pretexts or {}).items():
        seed = info.get("seed", s.pretext_seed)
        checks.append((("pretext", r.task, name, seed), f"{name} pretext weights of task "
                       f"{r.task}, seed {seed} (copy $BENCH_CACHE/pretexts to every machine, or "
                       "shard by seed)", info.get("weights")))
    return checks


def _check_same_experiment(rows: list[UnitRecord]) -> None:
    # First (value, dir) seen per key; a different value later means mixed experiments.
    first: dict[tuple, tuple[Any, str]] = {}
    for record in rows:
        for key, label, value in _identity(record):
            if value is None:
                continue
            if key not in first:
                first[key] = (value, record.run_dir)
            elif first[key][0] != value:
                old_value, old_dir = first[key]
                raise BenchError(f"cannot merge runs with different {label}: {old_dir} has "
                                 f"{old_value!r}, {record.run_dir} has {value!r}; "
                                 "report them separately")


def _metric_column(row: dict[str, Any], name: str) -> str:
    # Keep the prefix only where a bare name would clash with a top-level key.
    return f"metrics.{name}" if name in row else name


def _stored(record: UnitRecord) -> dict[str, Any]:
    """The row as its run store holds it, and the run directory it was read from."""
    return {**record.to_json(), "run_dir": record.run_dir}


def metric_names(rows: list[UnitRecord]) -> list[str]:
    """The table columns of every metric any row records, in order of first appearance."""
    names: dict[str, None] = {}
    for record in rows:
        row = _stored(record)
        names.update((_metric_column(row, name), None) for name in record.metrics or {})
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


def to_frame(rows: list[UnitRecord]) -> pd.DataFrame:
    """One row per unit, sorted by task, strategy, seed; fixed columns first, the rest by name."""
    frame = pd.DataFrame([flatten_row(_stored(record)) for record in rows])
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
