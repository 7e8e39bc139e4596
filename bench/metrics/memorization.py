"""Memorization: is a generated sample closer to its nearest training image than held-out real
images are to theirs? Measured in a feature space and in pixels."""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import fisher_exact

QUANTILE = 0.05  # a generator that does not copy has about this share below the held-out level
ALPHA = 0.05
# Flagged only from this share on: held-out real 2D sets reached 0.19 (pixels), because slices of
# one subject are not independent and some subjects lie nearer the training set than others;
# a quarter of samples copied gave at least 0.28 (bench validate-metrics, quick profile).
FLAG_SHARE = 0.25


def nearest_distances(x: torch.Tensor, train: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Euclidean distance from each row of x (flattened) to its nearest row of train, float64."""
    a, b = x.flatten(1).double(), train.flatten(1).double()
    return torch.cat([torch.cdist(part, b).min(1).values for part in a.split(chunk)])


def nearest_indices(x: torch.Tensor, train: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    a, b = x.flatten(1).double(), train.flatten(1).double()
    return torch.cat([torch.cdist(part, b).argmin(1) for part in a.split(chunk)])


def memorization(fake: torch.Tensor, held_out: torch.Tensor) -> dict[str, float]:
    """From nearest-training distances of generated samples (`fake`) and of held-out real images:
    `ratio`, median(fake) / median(held_out) (well below 1: closer to the training images than
    new real images are), and `share`, the fraction of generated samples nearer than the
    held-out images' 5th percentile (about 0.05 when nothing is copied)."""
    level = float(np.quantile(held_out.numpy(), QUANTILE))
    median = float(held_out.median())
    return {"ratio": float(fake.median()) / median if median > 0 else float("nan"),
            "share": float((fake < level).double().mean())}


def copies(fake: torch.Tensor, held_out: torch.Tensor) -> bool:
    """Flagged as copying: from nearest-training distances, at least FLAG_SHARE of the generated
    samples below the held-out 5th percentile, and significantly more than held-out images
    (one-sided Fisher exact test at ALPHA: exact for the small sets of 3D tasks, and it counts
    the percentile's own noise)."""
    level = float(np.quantile(held_out.numpy(), QUANTILE))
    k_fake, k_held = int((fake < level).sum()), int((held_out < level).sum())
    table = [[k_fake, len(fake) - k_fake], [k_held, len(held_out) - k_held]]
    return bool(k_fake >= FLAG_SHARE * len(fake)
                and fisher_exact(table, alternative="greater").pvalue < ALPHA)
