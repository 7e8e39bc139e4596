"""Memorization: is a generated sample closer to its nearest training image than held-out real
images are to theirs? Measured in a feature space and in pixels."""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import fisher_exact

QUANTILE = 0.05  # a generator that does not copy has about this share below the held-out level
ALPHA = 0.05
# Flagged only from this share on: held-out real sets reached 0.36 (3D, pixels: 9 of 25 volumes,
# 1 of 5 draws) and 0.19 (2D, pixels), as slices of one subject, or subjects' noise levels, make
# the nearest distances of a set far from independent; a set half copied from training images
# gave at least 0.5 (bench validate-metrics, quick profile). The share itself shows partial
# copying below that.
FLAG_SHARE = 0.5


def nearest(x: torch.Tensor, train: torch.Tensor, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(Euclidean distance from each row of x, flattened, to its nearest row of train, float64;
    that row's index)."""
    a, b = x.flatten(1).double(), train.flatten(1).double()
    found = [torch.cdist(part, b).min(1) for part in a.split(chunk)]
    return torch.cat([f.values for f in found]), torch.cat([f.indices for f in found])


def nearest_distances(x: torch.Tensor, train: torch.Tensor, rows_per_sample: int = 1) -> torch.Tensor:
    """One nearest-training distance per sample: the median over a sample's rows when it has
    several (a volume's slices in 2.5D features), so that samples, not rows, are counted."""
    distances = nearest(x, train)[0]
    return distances.view(-1, rows_per_sample).median(1).values if rows_per_sample > 1 else distances


def _level(held_out: torch.Tensor) -> float:
    return float(np.quantile(held_out.numpy(), QUANTILE))


def memorization(fake: torch.Tensor, held_out: torch.Tensor) -> dict[str, float]:
    """From nearest-training distances of generated samples (`fake`) and of held-out real images:
    `ratio`, median(fake) / median(held_out) (well below 1: closer to the training images than
    new real images are), and `share`, the fraction of generated samples nearer than the
    held-out images' 5th percentile (about 0.05 when nothing is copied)."""
    median = float(held_out.median())
    return {"ratio": float(fake.median()) / median if median > 0 else float("nan"),
            "share": float((fake < _level(held_out)).double().mean())}


def copies(fake: torch.Tensor, held_out: torch.Tensor) -> bool:
    """Flagged as copying: from nearest-training distances, at least FLAG_SHARE of the generated
    samples below the held-out 5th percentile, and significantly more than held-out images
    (one-sided Fisher exact test at ALPHA: exact for the small sets of 3D tasks, and it counts
    the percentile's own noise)."""
    level = _level(held_out)
    k_fake, k_held = int((fake < level).sum()), int((held_out < level).sum())
    table = [[k_fake, len(fake) - k_fake], [k_held, len(held_out) - k_held]]
    return bool(k_fake >= FLAG_SHARE * len(fake)
                and fisher_exact(table, alternative="greater").pvalue < ALPHA)
