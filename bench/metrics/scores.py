"""Sample-quality metrics on extracted features ([N, D]) or images ([N, 1, *spatial], 2D or 3D):
KID, precision/recall/density/coverage, MS-SSIM diversity and NDB."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import prdc
from joblib import parallel_config
import torch
from monai.metrics import MultiScaleSSIMMetric
from scipy.stats import norm
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from bench.device import exact_features

MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, finest scale first
MSSSIM_MIN_KERNEL = 7      # a sigma-1.5 Gaussian cut at +-2 sigma; narrower windows lose its shape
MSSSIM_MAX_KERNEL = 11     # the standard SSIM window
MSSSIM_BATCH_VOXELS = 2**24  # pixels per image stack in one MS-SSIM call: bounds memory at 128^3
KMEANS_N_INIT = 10


class MetricError(ValueError):
    """A metric that cannot be computed for these inputs; the message is the reason (one line,
    says what is wrong, e.g. 'needs more than 5 samples, got 3')."""


def _check_finite(x: torch.Tensor, what: str) -> None:
    if not torch.isfinite(x).all():
        raise MetricError(f"{what} contain non-finite values (NaN or inf)")


def _features(real: torch.Tensor, fake: torch.Tensor, min_n: int) -> tuple[np.ndarray, np.ndarray]:
    """Both feature sets as float64 arrays, checked for shape, size and finiteness."""
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise MetricError(f"needs two [N, D] feature sets of one width, got {tuple(real.shape)} "
                          f"and {tuple(fake.shape)}")
    if min(len(real), len(fake)) < min_n:
        raise MetricError(f"needs at least {min_n} samples per set, got {len(real)} real and "
                          f"{len(fake)} fake")
    _check_finite(real, "real features")
    _check_finite(fake, "fake features")
    return real.detach().cpu().double().numpy(), fake.detach().cpu().double().numpy()


def _polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b/d + 1)^3 (Binkowski et al. 2018). Hand-written: MONAI's
    MMD has only the linear kernel, and torchmetrics / torch-fidelity are not installed."""
    d, m = x.shape[1], len(x)
    k_xx, k_yy, k_xy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.mean())


def kid(real: torch.Tensor, fake: torch.Tensor, subsets: int, subset_size: int,
        seed: int) -> tuple[float, float]:
    """Kernel Inception Distance: (mean, std) of the unbiased polynomial-kernel MMD^2 over
    `subsets` random subsets of min(subset_size, len(real), len(fake)) samples per set."""
    x, y = _features(real, fake, 2)
    if subsets < 1 or subset_size < 2:
        raise MetricError(f"needs subsets >= 1 and subset_size >= 2, got {subsets} and {subset_size}")
    m = min(subset_size, len(x), len(y))
    rng = np.random.default_rng(seed)
    values = [_polynomial_mmd2(x[rng.choice(len(x), m, replace=False)],
                               y[rng.choice(len(y), m, replace=False)]) for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))


def prdc_scores(real: torch.Tensor, fake: torch.Tensor, k: int) -> dict[str, float]:
    """precision, recall, density and coverage (Naeem et al. 2020) with k nearest neighbours."""
    x, y = _features(real, fake, k + 1)
    # compute_prdc prints the set sizes on every call; keep them out of the CLI's output. It asks
    # scikit-learn for 8 threads, whose workers reset the process's warning filters while others
    # start, so that scikit-learn warns about its own `delayed`; one thread (BLAS still uses
    # every core) gives the same distances without it.
    with contextlib.redirect_stdout(io.StringIO()), parallel_config(backend="sequential"):
        scores = prdc.compute_prdc(real_features=x, fake_features=y, nearest_k=k)
    return {name: float(value) for name, value in scores.items()}


def msssim_setup(size: int) -> tuple[int, int]:
    """(scales, kernel) for images whose smallest side is `size`: the most scales (up to 5) at
    which a MSSSIM_MIN_KERNEL window still fits the coarsest scale, then the widest odd window
    up to 11 that fits at that many scales. 256 -> (5, 11), 128 -> (5, 7), 64 -> (4, 7),
    32 -> (3, 7), 16 -> (2, 7). A window fits when size // 2^(scales-1) >= kernel (the convolution
    needs one valid position) and MONAI's own check size // (scales-1)^2 > kernel - 1 passes
    (stricter than 2^(scales-1) at 4 scales)."""
    def fits(scales: int, kernel: int) -> bool:
        return (size // 2 ** (scales - 1) >= kernel
                and size // max(1, scales - 1) ** 2 > kernel - 1)

    feasible = [n for n in range(len(MSSSIM_WEIGHTS), 0, -1) if fits(n, MSSSIM_MIN_KERNEL)]
    if not feasible:
        raise MetricError(f"MS-SSIM needs images of at least {MSSSIM_MIN_KERNEL} pixels per side, "
                          f"got {size}")
    scales = feasible[0]
    kernel = max(k for k in range(MSSSIM_MIN_KERNEL, MSSSIM_MAX_KERNEL + 1, 2) if fits(scales, k))
    return scales, kernel


def msssim_diversity(images: torch.Tensor, pairs: int, seed: int) -> float:
    """Mean MS-SSIM (data range 2, for images in [-1, 1]) over `pairs` random pairs of distinct
    images of one set; higher means less diverse. Scales and window follow msssim_setup."""
    if images.ndim not in (4, 5) or images.shape[1] != 1:
        raise MetricError(f"needs images [N, 1, H, W] or [N, 1, D, H, W], got {tuple(images.shape)}")
    if len(images) < 2 or pairs < 1:
        raise MetricError(f"needs at least 2 images and 1 pair, got {len(images)} images and "
                          f"{pairs} pairs")
    _check_finite(images, "images")
    scales, kernel = msssim_setup(min(images.shape[2:]))
    weights = np.array(MSSSIM_WEIGHTS[:scales]) / sum(MSSSIM_WEIGHTS[:scales])
    metric = MultiScaleSSIMMetric(spatial_dims=images.ndim - 2, data_range=2.0, kernel_size=kernel,
                                  weights=tuple(weights), reduction="none")
    rng = np.random.default_rng(seed)
    first = rng.integers(0, len(images), pairs)
    # An offset in 1..N-1 makes the partner distinct and uniform over the other images.
    second = (first + rng.integers(1, len(images), pairs)) % len(images)
    chunk = max(1, MSSSIM_BATCH_VOXELS // images[0].numel())
    values = []
    with torch.no_grad(), exact_features(images.device):
        for start in range(0, pairs, chunk):
            a, b = (torch.as_tensor(idx[start:start + chunk], device=images.device)
                    for idx in (first, second))
            values.append(metric(images[a].float(), images[b].float()).flatten().cpu())
    return float(torch.cat(values).mean())


def different_bins(real: torch.Tensor, fake: torch.Tensor, bins: int, seed: int,
                   alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """NDB's detail: (k-means centres on the real features [bins, D], whether each bin's share of
    fake samples differs from its share of real ones by a pooled two-proportion z-test)."""
    if bins < 2:
        raise MetricError(f"NDB needs at least 2 bins, got {bins}")
    x, y = _features(real, fake, bins)
    # One thread: on a loaded CPU, KMeans' OpenMP barriers stalled for seconds per fit, while these
    # feature sets (thousands x tens) take milliseconds on one core.
    with threadpool_limits(limits=1):
        km = KMeans(n_clusters=bins, random_state=seed, n_init=KMEANS_N_INIT).fit(x)
        n_fake = np.bincount(km.predict(y), minlength=bins)
    n_real = np.bincount(km.labels_, minlength=bins)
    # Hand-written z-test: scipy has none for two proportions and statsmodels is not installed.
    p_real, p_fake = n_real / len(x), n_fake / len(y)
    pooled = (n_real + n_fake) / (len(x) + len(y))
    se = np.sqrt(pooled * (1 - pooled) * (1 / len(x) + 1 / len(y)))
    z = np.divide(p_fake - p_real, se, out=np.zeros(bins), where=se > 0)
    return km.cluster_centers_, 2 * norm.sf(np.abs(z)) < alpha


def ndb(real: torch.Tensor, fake: torch.Tensor, bins: int, seed: int,
        alpha: float = 0.05) -> dict[str, float]:
    """Number of statistically Different Bins (Richardson & Weiss 2018) and its share of bins."""
    _, different = different_bins(real, fake, bins, seed, alpha)
    count = int(different.sum())
    return {"ndb": count, "ndb_k": count / bins}
