import itertools

import pytest
import torch

from bench.metrics import scores as metrics
from bench.metrics.scores import MetricError


def gaussian(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) + shift


def mixture(modes: list[int], per_mode: int, seed: int, d: int = 8, spread: float = 10.0):
    """Samples of well-separated unit Gaussians centred at spread * e_mode, and the centres."""
    centres = spread * torch.eye(d)
    g = torch.Generator().manual_seed(seed)
    x = torch.cat([centres[m] + torch.randn(per_mode, d, generator=g) for m in modes])
    return x, centres


# KID

def test_kid_mmd_matches_the_pairwise_definition():
    x, y = gaussian(6, 3, 0).double().numpy(), gaussian(6, 3, 1, 0.5).double().numpy()

    def k(a, b):
        return (a @ b / 3 + 1) ** 3

    pairs = list(itertools.permutations(range(6), 2))
    expected = (sum(k(x[i], x[j]) + k(y[i], y[j]) for i, j in pairs) / len(pairs)
                - 2 * sum(k(x[i], y[j]) for i in range(6) for j in range(6)) / 36)
    assert metrics._polynomial_mmd2(x, y) == pytest.approx(expected, rel=1e-10)


def test_kid_is_unbiased_for_one_distribution_and_positive_for_shifted_ones():
    real = gaussian(400, 16, 0)
    # The biased (V-statistic) estimate would sit near 2 * (E k(x,x) - E k(x,y)) / m ~ 0.15 here.
    mean, std = metrics.kid(real, gaussian(400, 16, 1), subsets=50, subset_size=100, seed=0)
    assert abs(mean) < 2 * std and abs(mean) < 0.05
    # Unbiased: the expectation does not depend on the subset size.
    small, _ = metrics.kid(real, gaussian(400, 16, 1), subsets=50, subset_size=20, seed=0)
    assert abs(small) < 0.05
    shifted, shifted_std = metrics.kid(real, gaussian(400, 16, 1, shift=0.5), 50, 100, 0)
    assert shifted > 0.5 and shifted > 3 * shifted_std


def test_kid_is_reproducible_and_caps_the_subset_size():
    real, fake = gaussian(50, 4, 0), gaussian(30, 4, 1, 0.3)
    assert metrics.kid(real, fake, 5, 20, 7) == metrics.kid(real, fake, 5, 20, 7)
    assert metrics.kid(real, fake, 5, 20, 7) != metrics.kid(real, fake, 5, 20, 8)
    # subset_size beyond both sets: every subset holds all 30 fake samples, so only real varies.
    assert metrics.kid(real[:30], fake, 4, 1000, 0)[1] == pytest.approx(0.0, abs=1e-9)


# precision / recall / density / coverage

def test_prdc_of_identical_sets_is_one():
    x, _ = mixture(list(range(4)), 50, seed=0)
    scores = metrics.prdc_scores(x, x.clone(), k=5)
    assert set(scores) == {"precision", "recall", "density", "coverage"}
    for name in ("precision", "recall", "coverage"):
        assert scores[name] == pytest.approx(1.0)
    assert all(isinstance(v, float) for v in scores.values())


def test_prdc_dropped_modes_halve_coverage_but_keep_precision(capsys):
    real, _ = mixture(list(range(8)), 50, seed=0)
    fake, _ = mixture([0, 1, 2, 3] * 2, 50, seed=1)
    scores = metrics.prdc_scores(real, fake, k=5)
    assert 0.35 < scores["coverage"] < 0.6
    assert 0.35 < scores["recall"] < 0.6
    assert scores["precision"] > 0.9
    assert capsys.readouterr().out == ""  # prdc's own print is silenced


def test_prdc_needs_more_than_k_samples():
    with pytest.raises(MetricError, match="at least 6 samples.*got 5 real"):
        metrics.prdc_scores(gaussian(5, 4, 0), gaussian(20, 4, 1), k=5)


# NDB

def test_ndb_flags_the_bins_of_a_missing_mode_only():
    real, centres = mixture([0, 1, 2, 3, 4], 100, seed=0)
    missing, _ = mixture([0, 1, 2, 3], 125, seed=1)
    bin_centres, different = metrics.different_bins(real, missing, bins=10, seed=0)
    torch_centres = torch.as_tensor(bin_centres, dtype=torch.float32)
    of_missing_mode = torch.cdist(torch_centres, centres[4:5]).squeeze(1) < 5
    assert of_missing_mode.any() and different[of_missing_mode.numpy()].all()
    result = metrics.ndb(real, missing, bins=10, seed=0)
    assert result["ndb"] >= int(of_missing_mode.sum())
    assert result["ndb_k"] == result["ndb"] / 10

    fresh, _ = mixture([0, 1, 2, 3, 4], 100, seed=2)
    assert metrics.ndb(real, fresh, bins=10, seed=0)["ndb"] <= 1


def test_ndb_uses_a_pooled_two_proportion_z_test():
    """Two bins of 100 real samples each; 120 of 200 fake samples in one bin gives z = 2.01,
    p = 0.044 (both bins differ at 0.05, neither at 0.04); 115 of 200 gives p = 0.13."""
    real, _ = mixture([0, 1], 100, seed=0, d=2)
    fake, _ = mixture([0] * 24 + [1] * 16, 5, seed=1, d=2)
    assert metrics.ndb(real, fake, bins=2, seed=0) == {"ndb": 2, "ndb_k": 1.0}
    assert metrics.ndb(real, fake, bins=2, seed=0, alpha=0.04)["ndb"] == 0
    fewer, _ = mixture([0] * 23 + [1] * 17, 5, seed=1, d=2)
    assert metrics.ndb(real, fewer, bins=2, seed=0)["ndb"] == 0


def test_ndb_rejects_too_few_bins_or_samples():
    with pytest.raises(MetricError, match="at least 2 bins"):
        metrics.ndb(gaussian(20, 2, 0), gaussian(20, 2, 1), bins=1, seed=0)
    with pytest.raises(MetricError, match="at least 10 samples"):
        metrics.ndb(gaussian(20, 2, 0), gaussian(9, 2, 1), bins=10, seed=0)


# MS-SSIM

def smooth(dims: int, size: int) -> torch.Tensor:
    """One smooth image in [-1, 1] with structure at several scales."""
    grid = torch.meshgrid(*[torch.linspace(0, 1, size)] * dims, indexing="ij")
    return 0.8 * torch.sin(sum((i + 2) * 3.0 * g for i, g in enumerate(grid)))[None]


@pytest.mark.parametrize("dims,size", [(2, 32), (2, 64), (3, 16), (3, 32)])
def test_msssim_separates_diverse_from_collapsed_sets(dims, size):
    g = torch.Generator().manual_seed(0)
    copies = smooth(dims, size).expand(6, 1, *[size] * dims)
    assert metrics.msssim_diversity(copies, pairs=8, seed=0) == pytest.approx(1.0, abs=1e-4)
    near_copies = (copies + 0.05 * torch.randn(copies.shape, generator=g)).clamp(-1, 1)
    noise = torch.rand(copies.shape, generator=g) * 2 - 1
    collapsed = metrics.msssim_diversity(near_copies, pairs=8, seed=0)
    diverse = metrics.msssim_diversity(noise, pairs=8, seed=0)
    assert collapsed > 0.7 and diverse < 0.3


@pytest.mark.parametrize("size", [14, 16, 31, 32, 63, 64, 100, 127, 128, 175, 176, 256])
def test_msssim_setup_works_with_monai_at_every_size(size):
    scales, kernel = metrics.msssim_setup(size)
    assert 1 <= scales <= 5 and kernel in (7, 9, 11)
    images = torch.rand(2, 1, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert 0 <= metrics.msssim_diversity(images, pairs=1, seed=0) < 1


def test_msssim_setup_rule():
    assert [metrics.msssim_setup(s) for s in (16, 32, 64, 128, 256)] == [
        (2, 7), (3, 7), (4, 7), (5, 7), (5, 11)]
    with pytest.raises(MetricError, match="at least 7 pixels"):
        metrics.msssim_setup(6)


def test_msssim_pairs_are_distinct_and_seeded():
    g = torch.Generator().manual_seed(0)
    two = torch.rand(2, 1, 32, 32, generator=g) * 2 - 1
    # With two different images every pair is (0, 1) or (1, 0): one value, well below 1.
    assert metrics.msssim_diversity(two, 20, 0) == pytest.approx(
        metrics.msssim_diversity(two, 1, 5), abs=1e-6)
    mixed = torch.cat([smooth(2, 32).expand(3, 1, 32, 32), two])
    assert metrics.msssim_diversity(mixed, 10, 3) == metrics.msssim_diversity(mixed, 10, 3)


# bad inputs

def test_msssim_rejects_one_image_and_non_finite_values():
    with pytest.raises(MetricError, match="at least 2 images"):
        metrics.msssim_diversity(torch.zeros(1, 1, 32, 32), pairs=4, seed=0)
    bad = torch.zeros(4, 1, 32, 32)
    bad[2, 0, 3, 3] = float("nan")
    with pytest.raises(MetricError, match="images contain non-finite"):
        metrics.msssim_diversity(bad, pairs=4, seed=0)


@pytest.mark.parametrize("call", [
    lambda r, f: metrics.kid(r, f, 2, 10, 0),
    lambda r, f: metrics.prdc_scores(r, f, 3),
    lambda r, f: metrics.ndb(r, f, 2, 0),
])
def test_feature_metrics_reject_non_finite_features(call):
    real, fake = gaussian(20, 4, 0), gaussian(20, 4, 1)
    fake[3, 1] = float("inf")
    with pytest.raises(MetricError, match="fake features contain non-finite") as err:
        call(real, fake)
    assert "\n" not in str(err.value)
    with pytest.raises(MetricError, match="at least 2 samples"):
        metrics.kid(real[:1], fake, 2, 10, 0)
    with pytest.raises(MetricError, match="one width"):
        call(real, gaussian(20, 5, 1))


@pytest.mark.parametrize("n, m, d", [(100, 80, 64), (30, 40, 300), (500, 300, 128)])
def test_low_rank_frechet_distance_equals_monais(n, m, d):
    from monai.metrics.fid import get_fid_score

    from bench.metrics.fid import _frechet_low_rank
    gen = torch.Generator().manual_seed(n)
    a = torch.randn(n, d, generator=gen, dtype=torch.float64)
    b = torch.randn(m, d, generator=gen, dtype=torch.float64) * 1.3 + 0.2
    assert _frechet_low_rank(a, b) == pytest.approx(float(get_fid_score(a, b).real), rel=1e-6)
