"""The domain encoder: trained once on real train images, cached, and a sensible FID feature."""

import dataclasses

import pytest
import torch

import bench.metrics.domain as domain
from bench.device import seeded_generator
from bench.metrics.fid import frechet_distance
from ground.errors import BenchError

CPU = torch.device("cpu")
pytestmark = pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning",
                                        "ignore:invalid value encountered:RuntimeWarning")


def _fids(feats, data) -> dict:
    """FIDs that order any useful feature: real-real below real-noise and real-blank."""
    test = feats(data.test.t1)
    gen = seeded_generator(1)
    noise = torch.rand(data.test.t1.shape, generator=gen) * 2 - 1
    blank = torch.full_like(data.test.t1, -0.5)
    return {"self": frechet_distance(test, test), "real": frechet_distance(feats(data.val.t1), test),
            "noise": frechet_distance(test, feats(noise)), "blank": frechet_distance(test, feats(blank))}


@pytest.fixture(scope="module")
def encoder_2d(smoke_2d, cache_dir):
    _, s, data = smoke_2d
    return domain.get_domain_features(data, s, cache_dir, CPU, "fp32", progress=False)


def test_2d_features_and_fid_ordering(smoke_2d, encoder_2d):
    _, s, data = smoke_2d
    feats = encoder_2d(data.test.t1)
    assert feats.shape == (len(data.test.t1), s.domain_features) and feats.dtype == torch.float64
    assert torch.isfinite(feats).all()
    assert encoder_2d.info["steps"] == s.domain_steps and encoder_2d.key in encoder_2d.name
    fid = _fids(encoder_2d, data)
    assert fid["self"] == pytest.approx(0.0, abs=1e-6)
    assert fid["real"] < fid["noise"] / 3 and fid["real"] < fid["blank"]


def test_second_call_loads_the_cache(smoke_2d, cache_dir, encoder_2d, monkeypatch):
    _, s, data = smoke_2d

    def fail(*args, **kwargs):
        raise AssertionError("trained again instead of loading the cache")

    monkeypatch.setattr(domain, "train_encoder", fail)
    again = domain.get_domain_features(data, s, cache_dir, CPU, "fp32", progress=False)
    assert again.key == encoder_2d.key and again.info == encoder_2d.info
    assert torch.equal(again(data.val.t1), encoder_2d(data.val.t1))


def test_key_depends_on_what_the_encoder_depends_on(smoke_2d):
    _, s, data = smoke_2d
    key = domain.domain_key(data, s, 0)
    assert key == domain.domain_key(data, dataclasses.replace(s, steps=999, lr_g=1.0), 0)
    assert key != domain.domain_key(data, s, 1)
    assert key != domain.domain_key(data, dataclasses.replace(s, domain_steps=5), 0)


def test_training_is_deterministic_given_the_seed(smoke_2d, tmp_path):
    _, s, data = smoke_2d
    s = dataclasses.replace(s, domain_steps=2)
    a, b, c = (domain.get_domain_features(data, s, tmp_path / name, CPU, "fp32", seed=seed, progress=False)
               for name, seed in (("a", 0), ("b", 0), ("c", 1)))
    assert torch.equal(a(data.val.t1), b(data.val.t1))
    assert not torch.equal(a(data.val.t1), c(data.val.t1))


def test_corrupt_cache_is_retrained_with_a_warning(smoke_2d, tmp_path):
    _, s, data = smoke_2d
    s = dataclasses.replace(s, domain_steps=2)
    path = tmp_path / "domain" / f"{domain.domain_key(data, s, 0)}.pt"
    path.parent.mkdir()
    path.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="unreadable domain encoder"):
        feats = domain.get_domain_features(data, s, tmp_path, CPU, "bf16", progress=False)
    assert feats.info["steps"] == 2 and torch.isfinite(feats(data.val.t1[:4])).all()
    assert path.stat().st_size > 1000
    assert not [p for p in path.parent.iterdir() if p != path]  # no temporary left behind


def test_a_diverged_encoder_raises_and_is_not_cached(smoke_2d, tmp_path):
    _, s, data = smoke_2d
    t1 = data.train.t1.clone()
    t1[0, 0, 0, 0] = float("nan")
    data = dataclasses.replace(data, train=dataclasses.replace(data.train, t1=t1))
    s = dataclasses.replace(s, domain_steps=2, domain_batch=len(t1))  # every batch has the NaN
    with pytest.raises(BenchError, match="diverged"):
        domain.get_domain_features(data, s, tmp_path, CPU, "fp32", progress=False)
    assert not any(tmp_path.rglob("*.pt"))


def test_augmentation_is_seeded_and_keeps_the_background():
    x = torch.full((3, 1, 24, 24), -1.0)
    x[:, :, 8:16, 8:16] = 0.5
    a, b = (domain.augment(x, seeded_generator(7)) for _ in range(2))
    assert torch.equal(a, b) and a.shape == x.shape
    assert not torch.equal(a, domain.augment(x, seeded_generator(8)))
    assert torch.equal(a[:, :, 0, 0], torch.full((3, 1), -1.0))  # no intensity or noise change
    assert a.max() <= 0.5 + 1e-6


def test_volumes_are_read_as_slices_of_three_planes():
    x = torch.arange(2 * 16 ** 3, dtype=torch.float32).view(2, 1, 16, 16, 16)
    slices = domain.as_slices(x)
    k = domain.SLICES_PER_PLANE
    assert slices.shape == (2 * 3 * k, 1, 16, 16)
    assert torch.equal(slices[0, 0], x[0, 0, 4])            # first axial slice, central half
    assert torch.equal(slices[k, 0], x[0, 0, :, 4])         # then coronal
    assert torch.equal(slices[3 * k, 0], x[1, 0, 4])        # the second volume follows


def test_3d_features_and_fid_ordering(cache_dir, smoke_2d):
    import datasets
    from bench.profiles import get_settings
    s = dataclasses.replace(get_settings("smoke", 3), domain_features=4, domain_steps=3)
    data = datasets.build_task_data(datasets.get_task("phantom-3d"), 16, cache_dir, 0,
                                    splits={"train": 8, "val": 6, "test": 6}, progress=False)
    feats = domain.get_domain_features(data, s, cache_dir, CPU, "fp32", progress=False)
    out = feats(data.test.t1)
    assert out.shape == (6 * 3 * domain.SLICES_PER_PLANE, 4) and torch.isfinite(out).all()
    fid = _fids(feats, data)
    assert fid["self"] == pytest.approx(0.0, abs=1e-6)
    assert fid["real"] < fid["noise"] and fid["real"] < fid["blank"]
