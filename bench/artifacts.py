"""Trained artifacts cached on disk (pretext models, the domain encoder): trained once, loaded
afterwards; a file that cannot be read back is trained again, never trusted."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Callable, TypeVar

import torch

from ground.atomic import atomic_path

T = TypeVar("T")


def load_or_train(path: Path, what: str, load: Callable[[dict], T], train: Callable[[], dict]) -> T:
    """`load(blob)` of the blob saved at `path`, or of `train()`'s blob, saved there atomically
    (the file appears only when complete). `load` may reject a blob by raising: it is then
    trained again with a warning, like a file torch cannot read."""
    path = Path(path)
    if path.exists():
        try:
            return load(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as err:  # an unreadable artifact is retrained, never trusted
            warnings.warn(f"ignoring unreadable {what} {path} ({err}); training it again", stacklevel=3)
    blob = train()
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
    return load(blob)


def nonfinite(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of floating-point tensors with NaN or inf: a diverged model is never cached."""
    return [n for n, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()]


def weights_digest(state: dict[str, dict[str, torch.Tensor]]) -> str:
    """A short hash of every tensor's name and bytes: two machines that trained the same pretext
    key (GPU kernels are not bit-reproducible) hold different weights, and reports must not mix
    units started from them."""
    h = hashlib.sha256()
    for part in sorted(state):
        for name in sorted(state[part]):
            h.update(f"{part}.{name}".encode())
            h.update(state[part][name].detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]
