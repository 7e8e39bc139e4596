"""The Fréchet distance between two feature sets, whichever network made the features
(bench.metrics.domain for the domain FID, bench.metrics.inception for the standard FID)."""

from __future__ import annotations

import numpy as np
import torch
from monai.metrics.fid import get_fid_score


# Above this many features scipy's sqrtm of the d x d covariance product (inside MONAI) takes
# 12-20 s per call for Inception's 2048 on 2 cores; the low-rank identity below takes milliseconds.
SQRTM_MAX_FEATURES = 256


def _frechet_low_rank(a: torch.Tensor, b: torch.Tensor) -> float:
    """The same Fréchet distance, exactly: with centred features A, B (n x d, m x d),
    tr sqrt(cov_a cov_b) is the sum of the singular values of A B^T / sqrt((n-1)(m-1)), because
    the non-zero eigenvalues of A^T A B^T B are the squared singular values of A B^T."""
    ac, bc = a - a.mean(0), b - b.mean(0)
    na, nb = len(a) - 1, len(b) - 1
    trace_sqrt = torch.linalg.svdvals(ac @ bc.T).sum() / (na * nb) ** 0.5
    return float((a.mean(0) - b.mean(0)).square().sum() + ac.square().sum() / na
                 + bc.square().sum() / nb - 2 * trace_sqrt)


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float | None:
    """FID between two feature sets, or None when it cannot be computed (non-finite features,
    a matrix square root that fails). MONAI's implementation for up to SQRTM_MAX_FEATURES
    features, the exact low-rank form above for more."""
    if not (torch.isfinite(feats_a).all() and torch.isfinite(feats_b).all()):
        return None
    a, b = feats_a.cpu().double(), feats_b.cpu().double()
    try:
        if a.shape[1] > SQRTM_MAX_FEATURES:
            value = _frechet_low_rank(a, b)
        else:
            value = float(torch.as_tensor(get_fid_score(a, b)).real)
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
