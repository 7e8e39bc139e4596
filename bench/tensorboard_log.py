"""TensorBoard event files per unit: `tensorboard --logdir RUN_DIR` shows the losses, the curve
metrics and D's accuracy at each evaluation, and the samples (a grid in 2D, the three central
planes of a few volumes in 3D)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

SHOWN = {2: 16, 3: 4}  # images (2D) or volumes (3D) per evaluation
_NOT_SCALARS = {"step", "seconds", "flops"}


def _tag(name: str) -> str:
    if name.startswith("loss_"):
        return f"loss/{name[5:]}"
    if name.startswith("d_acc_"):
        return f"d_accuracy/{name[6:]}"
    return f"metric/{name}"


def sample_view(samples: torch.Tensor) -> torch.Tensor:
    """[1, H, W] in [0, 1]: 2D images tiled in a square grid, or per 3D volume one row of its
    central axial, coronal and sagittal slices."""
    x = ((samples.detach().float().cpu().clamp(-1, 1) + 1) / 2)[:SHOWN[samples.ndim - 2], 0]
    if samples.ndim == 5:
        d, h, w = x.shape[1:]
        rows = [torch.cat([v[d // 2], v[:, h // 2], v[:, :, w // 2]], dim=1) for v in x]
        return torch.cat(rows, dim=0)[None]
    side = math.ceil(math.sqrt(len(x)))
    tiles = torch.cat([x, x.new_zeros(side * side - len(x), *x.shape[1:])])
    return tiles.view(side, side, *x.shape[1:]).permute(0, 2, 1, 3).flatten(0, 1).flatten(1)[None]


class UnitLog:
    """One unit's event files, opened by `start` once the unit knows where it resumes; a
    context manager, so that a unit that raises still closes them."""

    def __init__(self, log_dir: Path):
        self.log_dir, self.writer = log_dir, None

    def start(self, step: int, resumed: bool) -> None:
        """A unit resumed at `step` drops the events a killed process wrote after it; one that
        starts at 0 (fresh, or its checkpoint ignored) drops every earlier event: the curves
        hold each step once, all from this unit's run."""
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(str(self.log_dir), purge_step=step + 1 if resumed else 0)

    def __call__(self, row: dict, samples: torch.Tensor) -> None:
        step = int(row["step"])
        for name, value in row.items():
            if name not in _NOT_SCALARS and isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(_tag(name), value, step)
        if torch.isfinite(samples).all():
            self.writer.add_image("samples", sample_view(samples), step)
        self.writer.flush()  # an interrupted run keeps what it logged

    def __enter__(self) -> UnitLog:
        return self

    def __exit__(self, *exc) -> None:
        if self.writer is not None:
            self.writer.close()
