"""FID behind a small interface: a fixed feature network and the Fréchet distance.

The feature network here is a randomly initialised, frozen conv net with a fixed seed, serving 2D
and 3D alike. Naeem et al. (2020, "Reliable fidelity and diversity metrics for generative models")
showed that such random embeddings rank generative models sensibly; unlike Inception weights they
need no download and exist for volumes. Its numbers are comparable only within this project (same
`FEATURE_NET` name), never with published Inception FIDs.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from monai.metrics.fid import get_fid_score
from monai.networks.layers.factories import Conv
from torch import nn

FEATURE_NET = "random-conv-v1"
_FEATURE_SEED = 20171
# Fewer features in 3D, where a task has tens of held-out volumes, not hundreds of slices: the
# covariance of D features needs more than D samples to be full rank.
STAGES = {2: (16, 16, 32), 3: (8, 8, 16)}


class FeatureExtractor(Protocol):
    name: str

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """[N, 1, *spatial] images in [-1, 1] -> [N, D] float64 features."""


class RandomConvFeatures(nn.Module):
    """Three stride-2 stages; per-stage global means concatenated (coarse and fine statistics)."""

    name = FEATURE_NET

    def __init__(self, spatial_dims: int):
        super().__init__()
        gen = torch.Generator().manual_seed(_FEATURE_SEED)
        self.stages = nn.ModuleList()
        cin = 1
        for cout in STAGES[spatial_dims]:
            conv = Conv[Conv.CONV, spatial_dims](cin, cout, 3, stride=2, padding=1)
            fan_in = cin * 3 ** spatial_dims
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                conv.bias.zero_()
            self.stages.append(conv)
            cin = cout
        self.requires_grad_(False).eval()

    @torch.no_grad()
    def forward(self, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
        out = []
        for chunk in images.split(batch):
            x, feats = chunk.float(), []
            for conv in self.stages:
                x = torch.nn.functional.leaky_relu(conv(x), 0.2)
                feats.append(x.flatten(2).mean(-1))
            out.append(torch.cat(feats, 1))
        return torch.cat(out).double()


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float | None:
    """FID between two feature sets (MONAI's implementation; scipy's sqrtm underneath), or None
    when it cannot be computed (non-finite features, a matrix square root that fails)."""
    if not (torch.isfinite(feats_a).all() and torch.isfinite(feats_b).all()):
        return None
    try:
        value = float(torch.as_tensor(get_fid_score(feats_a.cpu().double(), feats_b.cpu().double())).real)
    except (ValueError, RuntimeError, np.linalg.LinAlgError):
        return None
    if not np.isfinite(value):
        return None
    # Rounding can leave a tiny negative value for identical sets; a distance is never negative.
    return max(0.0, value)


def even_subset(images: torch.Tensor, n: int) -> torch.Tensor:
    """n images spread evenly over the set, so every held-out subject is represented."""
    idx = torch.linspace(0, len(images) - 1, n).round().long()
    return images[idx]
