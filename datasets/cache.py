"""The on-disk tensor cache: content-addressed file names, atomic writes, distrustful reads."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from ground.atomic import atomic_path

CACHE_FORMAT = 1  # layout of the cache file itself


def digest(parts: Iterable[bytes | memoryview | Any]) -> str:
    """16 hex characters of sha256 over byte strings or C-contiguous buffers (numpy arrays)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p)  # buffers are hashed in place: no copy of gigabyte-sized tensors
    return h.hexdigest()[:16]


def save_atomic(payload: dict[str, Any], path: Path) -> None:
    # A crash mid-write leaves no half-written cache entry.
    with atomic_path(path) as tmp:
        torch.save({"format": CACHE_FORMAT, **payload}, tmp)


def load(path: Path, key: str) -> dict[str, Any] | None:
    """The payload saved under `key`, or None (with a warning) when the file is unusable."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != CACHE_FORMAT or payload.get("key") != key:
            raise ValueError("the entry belongs to different settings")
        return payload
    except Exception as e:  # an unreadable entry is rebuilt, never trusted
        warnings.warn(f"ignoring unreadable data cache {path} ({e}); rebuilding it", stacklevel=3)
        return None
