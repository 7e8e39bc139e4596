"""datasets: task specs, the mni-phantom source, subject-level splits and the on-disk cache."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from pathlib import Path

import pytest
import torch

import datasets
import datasets.build as build
import datasets.splits as splits
import datasets.cache
from datasets import (
    LABELS,
    Split,
    TaskData,
    build_task_data,
    factors,
    get_task,
    list_tasks,
    render_subject,
    working_grid,
)
from datasets.anatomy import load_tissue_maps
from datasets.spec import Slicing
from ground.errors import BenchError

TINY = {"train": 3, "val": 2, "test": 2}
CSF, GM, WM = (LABELS.index(t) for t in ("csf", "gm", "wm"))


def _mean(image: torch.Tensor, labels: torch.Tensor, label: int) -> float:
    mask = labels == label
    assert mask.sum() > 0, f"no {LABELS[label]} voxels"
    return float(image[mask].mean())


# ---------------------------------------------------------------- task specs

def test_list_tasks_are_the_two_phantoms():
    specs = list_tasks()
    assert [s.name for s in specs] == ["phantom-2d", "phantom-3d"]
    two, three = specs
    assert (two.dims, three.dims) == (2, 3)
    rarest = math.prod(min(f.frequencies) for f in factors.FACTORS)
    for spec in specs:  # every joint mode of the factors has subjects in every split
        assert all(n * rarest >= 5 for n in spec.splits.values()), spec.splits
    assert two.slicing is not None and two.slicing.per_subject == 24
    assert two.slicing.axis == "axial" and three.slicing is None
    for s in specs:
        assert s.source == "mni-phantom" and (s.target, s.other) == ("t1", "t2")
        assert s.modalities == ("t1", "t2")
        assert s.description and "\n" not in s.description
        assert s.path is not None and s.path.name == f"{s.name}.toml"
        hash(s)  # usable as a dict key


def test_get_task_unknown_name():
    with pytest.raises(BenchError) as e:
        get_task("nope")
    assert str(e.value) == ("unknown task 'nope'; known: phantom-2d, phantom-3d "
                            "(or give a path to a .toml task file)")


def test_get_task_from_path(tmp_path):
    text = get_task("phantom-2d").path.read_text().replace("train = 180", "train = 7")
    path = tmp_path / "mine.toml"
    path.write_text(text.replace('name = "phantom-2d"', 'name = "mine"'))
    spec = get_task(str(path))
    assert spec.name == "mine" and spec.splits["train"] == 7 and spec.path == path

    with pytest.raises(BenchError, match="not found"):
        get_task(str(tmp_path / "missing.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("dims = 2", "dims = 4"))
    with pytest.raises(BenchError, match="bad.toml.*dims"):
        get_task(str(bad))


# ---------------------------------------------------------------- the phantom

def test_ventricles_are_csf_in_the_undeformed_maps():
    maps = load_tissue_maps()
    to_voxel = np.linalg.inv(maps.affine)
    # lateral ventricles, both hemispheres: frontal horns, bodies, atria (MNI mm)
    for point in [(-5, 10, 10), (5, 10, 10), (-15, -15, 25), (15, -15, 25),
                  (-20, -30, 20), (20, -30, 20)]:
        v = tuple(np.round(to_voxel @ np.array([*point, 1.0]))[:3].astype(int))
        assert maps.csf[v] > 0.8 and maps.csf[v] > maps.gm[v] + maps.wm[v], point
    # and they survive the anti-aliased resize to a working grid
    grid = working_grid(64)
    to_working = np.linalg.inv(grid.affine)
    for point in [(-15, -15, 25), (15, -15, 25)]:
        v = np.round(to_working @ np.array([*point, 1.0]))[:3].astype(int)
        assert int(grid.maps[:, v[0], v[1], v[2]].argmax()) == CSF - 1, point


@pytest.mark.parametrize("index,seed", [(0, 0), (5, 3)])
def test_tissue_contrast(index, seed):
    s = render_subject(index, seed, 32)
    assert s.t1.shape == s.t2.shape == s.labels.shape == (32, 32, 32)
    assert s.t1.dtype == torch.float32 and s.labels.dtype == torch.int64
    t1 = [_mean(s.t1, s.labels, k) for k in (WM, GM, CSF)]
    t2 = [_mean(s.t2, s.labels, k) for k in (CSF, GM, WM)]
    assert t1[0] > t1[1] > t1[2], f"T1w WM > GM > CSF, got {t1}"
    assert t2[0] > t2[1] > t2[2], f"T2w CSF > GM > WM, got {t2}"
    for image in (s.t1, s.t2):
        assert image.min() >= -1 and image.max() <= 1
        assert torch.all(image[~s.brain] == -1)


def test_render_is_deterministic_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = render_subject(4, 1, 16)
    assert torch.equal(torch.rand(3), expected)
    b = render_subject(4, 1, 16)
    assert torch.equal(a.t1, b.t1) and torch.equal(a.t2, b.t2) and torch.equal(a.labels, b.labels)
    for other in (render_subject(4, 2, 16), render_subject(5, 1, 16)):
        assert not torch.equal(a.t1, other.t1)
        assert not torch.equal(a.labels, other.labels)  # the anatomy differs, not just noise


def test_slice_levels_skip_empty_and_spread_evenly():
    brain = torch.zeros(64, 64, 64, dtype=torch.bool)
    brain[10:50, 8:56, 8:56] = True  # levels 10..49 are mostly brain
    brain[5:10, 30:32, 30:32] = True  # a sliver: near-empty levels
    levels = splits.slice_levels(brain, Slicing("axial", 24, 0.15))
    assert len(levels) == 24 == len(set(levels))
    assert levels[0] == 10 and levels[-1] == 49 and levels == sorted(levels)


# ---------------------------------------------------------------- task data

def _fake_spec(name: str, **changes):
    return dataclasses.replace(get_task(name), **changes)


def test_2d_splits_are_by_subject(tmp_path):
    spec = get_task("phantom-2d")
    data = build_task_data(spec, 32, tmp_path, splits=TINY, progress=False)
    assert isinstance(data, TaskData) and data.size == 32 and len(data.fingerprint) == 16
    seen: set[int] = set()
    for name, n_subjects in TINY.items():
        split = data.split(name)
        assert isinstance(split, Split)
        ids = split.subject.tolist()
        assert len(set(ids)) == n_subjects
        assert not seen & set(ids), "a subject is in two splits"
        seen |= set(ids)
        assert split.t1.shape == split.t2.shape == (n_subjects * 24, 1, 32, 32)
        assert split.t1.dtype == torch.float32 and split.subject.dtype == torch.int64
        for i in set(ids):
            assert ids.count(i) == spec.slicing.per_subject
        assert split.t1.min() >= -1 and split.t1.max() <= 1
        # no near-empty slice: brain pixels are exactly those above the -1 background
        brain = ((split.t1 > -1) | (split.t2 > -1)).float().mean(dim=(1, 2, 3))
        assert brain.min() >= spec.slicing.min_brain_fraction


def test_3d_shapes(tmp_path):
    data = build_task_data(get_task("phantom-3d"), 16, tmp_path, splits=TINY, progress=False)
    assert data.train.t1.shape == (3, 1, 16, 16, 16)
    assert data.val.t2.shape == data.test.t1.shape == (2, 1, 16, 16, 16)
    assert data.train.subject.tolist() == [0, 1, 2]
    assert data.val.subject.tolist() == [3, 4] and data.test.subject.tolist() == [5, 6]
    direct = render_subject(3, 0, 16)
    assert torch.equal(data.val.t1[0, 0], direct.t1)  # volumes are the rendered subjects


@pytest.mark.parametrize("size", [30, 12, 0, 17])
def test_bad_size(tmp_path, size):
    with pytest.raises(BenchError, match=f"size {size}"):
        build_task_data(get_task("phantom-3d"), size, tmp_path, splits=TINY, progress=False)


def test_unknown_source_and_bad_splits(tmp_path):
    with pytest.raises(BenchError, match="unknown data source 'nosuch'"):
        build_task_data(_fake_spec("phantom-3d", source="nosuch"), 16, tmp_path, progress=False)
    with pytest.raises(BenchError, match="gives no data_root"):
        build_task_data(_fake_spec("phantom-3d", source="ixi"), 16, tmp_path, progress=False)
    with pytest.raises(BenchError, match="splits"):
        build_task_data(get_task("phantom-3d"), 16, tmp_path, splits={"train": 2}, progress=False)


def test_cache_is_reused_and_written_atomically(tmp_path, monkeypatch):
    spec = get_task("phantom-2d")
    first = build_task_data(spec, 16, tmp_path / "a", splits=TINY, progress=False)
    files = list((tmp_path / "a").iterdir())
    assert len(files) == 1 and files[0].suffix == ".pt"  # no temp file left behind
    assert files[0] == datasets.cache_path(spec, 16, tmp_path / "a", splits=TINY)

    def boom(*args):
        raise AssertionError("renderer called although the data are cached")

    with monkeypatch.context() as m:
        m.setitem(build.SOURCES, "mni-phantom", boom)
        again = build_task_data(spec, 16, tmp_path / "a", splits=TINY, progress=False)
    assert again.fingerprint == first.fingerprint
    assert torch.equal(again.train.t1, first.train.t1)
    assert torch.equal(again.test.subject, first.test.subject)

    # rebuilt from scratch elsewhere: the same bytes; another seed: other data, other file
    fresh = build_task_data(spec, 16, tmp_path / "b", splits=TINY, progress=False)
    assert fresh.fingerprint == first.fingerprint
    other = build_task_data(spec, 16, tmp_path / "a", data_seed=1, splits=TINY, progress=False)
    assert other.fingerprint != first.fingerprint
    assert len(list((tmp_path / "a").iterdir())) == 2


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets.cache.torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_task_data(get_task("phantom-3d"), 16, tmp_path, splits=TINY, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unreadable_cache_is_rebuilt(tmp_path):
    spec = get_task("phantom-3d")
    good = build_task_data(spec, 16, tmp_path, splits=TINY, progress=False)
    datasets.cache_path(spec, 16, tmp_path, splits=TINY).write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="rebuilding"):
        again = build_task_data(spec, 16, tmp_path, splits=TINY, progress=False)
    assert again.fingerprint == good.fingerprint


@pytest.mark.slow
def test_worker_processes_give_the_same_data(tmp_path):
    spec = get_task("phantom-3d")
    splits = {"train": 2, "val": 1, "test": 1}
    one = build_task_data(spec, 16, tmp_path / "one", splits=splits, progress=False, workers=1)
    two = build_task_data(spec, 16, tmp_path / "two", splits=splits, progress=False, workers=2)
    assert one.fingerprint == two.fingerprint


def test_generated_tasks_content_leaves_out_real_source_keys():
    # Their cache keys (data, pretexts, domain encoders) must not change with fields they lack.
    content = get_task("phantom-2d").content()
    assert not {"data_root", "t1_pattern", "t2_pattern", "spacing"} & set(content)
