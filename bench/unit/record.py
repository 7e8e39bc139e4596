"""A unit's row in the run store: what ran, where, on which data, and what came of it. A finished
unit's row has every field; a failed one's leaves out what only training gives."""

from __future__ import annotations

import datetime as dt
import platform
from importlib.metadata import PackageNotFoundError, version

import torch

from bench.device import hardware, resolve_precision
from bench.profiles import Settings
from bench.records import Draw, Tuned, UnitRecord, UnitSettings
from bench.store import unit_id


# What only a trained unit has: a failed unit's row says what ran, where, and why it failed.
TRAINED_ONLY = ("steps", "resumed_step", "train_seconds", "seconds", "budgets", "events",
                "mode_counts", "compute", "transfer", "movement", "pretexts", "strategy_origin",
                "reference", "files")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg, dist in [("torch", "torch"), ("monai", "monai"), ("torchio", "torchio"),
                      ("numpy", "numpy"), ("bench", "gan-init-bench")]:
        try:
            out[pkg] = version(dist)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def pretext_summary(artifacts: dict) -> dict:
    keep = ("key", "seed", "weights", "steps", "seconds", "ssim", "psnr", "ssim_identity",
            "psnr_identity", "val_l1")
    return {n: {k: a.info.get(k) for k in keep if k in a.info} for n, a in artifacts.items()}


def pretext_seed(cfg, seed: int) -> int:
    return seed if cfg.pretext_seed is None else cfg.pretext_seed


def unit_row(spec, strategy_name: str, seed: int, cfg, device: torch.device, data, s: Settings,
             tuned: dict | None = None, draw: dict | None = None, **fields) -> UnitRecord:
    """What every row records, finished or failed: what ran, where, on which data."""
    settings = UnitSettings(
        profile=cfg.profile, recipe=cfg.recipe, device=str(device),
        **precision_record(cfg, device), data_fingerprint=data.fingerprint,
        data_seed=cfg.data_seed, data_source=spec.source, data_skipped=len(data.skipped),
        train_subjects_used=int(data.train.subject.unique().numel()),
        pretext_seed=pretext_seed(cfg, seed), pretext_shared=cfg.pretext_seed is not None,
        seeds=cfg.seeds, image_size=s.image_size, dims=s.dims, batch_size=s.batch_size,
        steps=s.steps, harness=s.as_dict(), **spec.record())
    fields = {"status": "failed", **fields}
    return UnitRecord(
        unit=unit_id(spec.name, strategy_name, seed), task=spec.name, strategy=strategy_name,
        seed=seed, settings=settings, versions=versions(), hardware=hardware(device),
        tuned=None if tuned is None else Tuned(**tuned), draw=None if draw is None else Draw(**draw),
        finished_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), **fields)


def precision_record(cfg, device: torch.device) -> dict:
    chosen = resolve_precision(cfg.precision, device)
    return {"precision": chosen.name, "precision_reason": chosen.reason}


def failed_row(spec, strategy_name: str, seed: int, cfg, device: torch.device, data,
               s: Settings, reason: str, failure: str, tuned: dict | None,
               draw: dict | None = None) -> UnitRecord:
    """`failure`: "pretext" (its pretext diverged in training: the report counts the unit as
    lost) or "error" (anything else, e.g. a broken plugin: no verdict is given until a rerun,
    which retries every failed unit, finishes it). The row leaves out what only a trained unit
    has."""
    record = unit_row(spec, strategy_name, seed, cfg, device, data, s, reason=reason,
                      failure=failure, tuned=tuned, draw=draw,
                      metrics_missing={"all": f"the unit failed: {reason}"})
    record.omit(*TRAINED_ONLY)
    return record
