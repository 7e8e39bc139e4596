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


BIAS_FRACTIONS = (0.25, 0.5, 0.75, 1.0)


def fid_infinity(feats_a: torch.Tensor, feats_b: torch.Tensor, rows_per_sample: int = 1) -> dict:
    """FID is close to linear in 1/N (Chong & Forsyth 2020): fit FID(N) = fid_inf + slope / N
    over evenly spread subsets of N samples of both sets (a sample's `rows_per_sample` feature
    rows, e.g. a volume's slices, stay together). Between two real sets fid_inf is about 0, so
    `bias` = slope / N is what sample size alone adds at the full N samples."""
    n = min(len(feats_a), len(feats_b)) // rows_per_sample
    sizes = sorted({max(2, round(f * n)) for f in BIAS_FRACTIONS})
    points = []
    for size in sizes:
        picks = torch.linspace(0, n - 1, size).round().long()
        rows = (picks[:, None] * rows_per_sample + torch.arange(rows_per_sample)).flatten()
        value = frechet_distance(feats_a[rows], feats_b[rows])
        if value is not None:
            points.append((1 / size, value))
    if len(points) < 2:
        return {"n": n, "fid_inf": None, "bias": None}
    slope, intercept = np.polyfit(*np.array(points).T, deg=1)
    return {"n": n, "fid_inf": float(intercept), "bias": float(slope / n)}


def even_subset(images: torch.Tensor, n: int) -> torch.Tensor:
    """n images spread evenly over the set, so every held-out subject is represented."""
    idx = torch.linspace(0, len(images) - 1, n).round().long()
    return images[idx]
