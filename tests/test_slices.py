"""The `paired-slices` source: 2D T1/T2 slices as PNG, .npy or 2D NIfTI, one folder per subject."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

import datasets
from datasets.discover import discover
from datasets.phantom import render_subject
from datasets.preprocess import BadScan
from datasets.slices import prepare_slice_pair, read_slice
from ground.errors import BenchError

REPO = Path(__file__).resolve().parents[1]
SIZE = 48  # the rendered cube; slices are stored at this size and resized by the task


def _slices(index: int, levels=(20, 24, 28)) -> list[tuple[np.ndarray, np.ndarray]]:
    """Axial phantom slices of subject `index` as scanner-like intensities (0 outside the head)."""
    subject = render_subject(index, 0, SIZE)
    return [tuple(((x[level].numpy() + 1) * 1000).astype(np.float32) for x in (subject.t1, subject.t2))
            for level in levels]


def _png(path: Path, image: np.ndarray, bits: int = 16, rgb: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scaled = image / image.max() * (2 ** bits - 1)
    data = scaled.astype(np.uint16 if bits == 16 else np.uint8)
    if rgb:
        data = np.repeat(data[..., None], 3, axis=2)
    Image.fromarray(data).save(path)


def _nifti(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(image[..., None], np.eye(4)), str(path))  # N x M x 1


def _dataset(root: Path) -> Path:
    """Six subjects in every accepted form, plus items that must be skipped."""
    (t1, t2), = _slices(0, levels=(24,))
    _png(root / "s0" / "t1.png", t1)
    _png(root / "s0" / "t2.png", t2)
    for level, (a, b) in zip((20, 24, 28), _slices(1)):  # several slices, N x M x 1 arrays
        (root / "s1").mkdir(parents=True, exist_ok=True)
        np.save(root / "s1" / f"z{level:03d}_T1.npy", a[..., None])
        np.save(root / "s1" / f"z{level:03d}_T2.npy", b[..., None])
    for level, (a, b) in zip((20, 24), _slices(2, levels=(20, 24))):  # 2D NIfTI, N x M x 1
        _nifti(root / "s2" / f"s2_t1_{level}.nii.gz", a)
        _nifti(root / "s2" / f"s2_t2_{level}.nii.gz", b)
    (a, b), = _slices(3, levels=(24,))
    _png(root / "s3" / "slice_t1.png", a, bits=8, rgb=True)  # an RGB export of a grey slice
    _png(root / "s3" / "slice_t2.png", b, bits=8)
    _png(root / "s3" / "slice_flair.png", b, bits=8)  # not a candidate
    _png(root / "s3" / "slice_t1ce.png", a, bits=8)   # contrast-enhanced: not T1
    for index in (4, 5):
        (a, b), = _slices(index, levels=(24,))
        _png(root / f"s{index}" / "a_t1.png", a)
        _png(root / f"s{index}" / "a_t2.png", b)
        _png(root / f"s{index}" / "b_t1.png", a)  # its T2 is missing: skipped, the rest kept
    _png(root / "onlyt1" / "t1.png", t1)
    _png(root / "loose_t1.png", t1)  # outside any subject folder
    return root


def test_discovery_pairs_slices_by_name_apart_from_the_contrast(tmp_path):
    found = discover("paired-slices", _dataset(tmp_path / "slices"))
    slices = {p.subject: [(a.name, b.name) for a, b in p.slices] for p in found.pairs}
    assert slices["s0"] == [("t1.png", "t2.png")]
    assert slices["s1"] == [(f"z{z:03d}_T1.npy", f"z{z:03d}_T2.npy") for z in (20, 24, 28)]
    assert slices["s2"] == [("s2_t1_20.nii.gz", "s2_t2_20.nii.gz"),
                            ("s2_t1_24.nii.gz", "s2_t2_24.nii.gz")]
    assert slices["s3"] == [("slice_t1.png", "slice_t2.png")]  # FLAIR and T1ce left alone
    assert slices["s4"] == [("a_t1.png", "a_t2.png")]
    assert "onlyt1" not in slices
    skipped = dict(found.skipped)
    assert skipped["onlyt1/t1.png"] == "no T2 slice named like it apart from the contrast"
    assert skipped["s4/b_t1.png"] == "no T2 slice named like it apart from the contrast"
    assert skipped["loose_t1.png"].startswith("not in a subject folder")


def test_two_files_for_one_slice_are_an_error(tmp_path):
    root = _dataset(tmp_path / "slices")
    np.save(root / "s0" / "t1.npy", np.ones((8, 8)))
    with pytest.raises(BenchError, match="two files claim the T1 slice"):
        discover("paired-slices", root)


def test_a_slice_stored_with_a_trailing_singleton_axis_reads_as_2d(tmp_path):
    image = np.arange(400, dtype=np.float32).reshape(20, 20)
    np.save(tmp_path / "a.npy", image[..., None])
    _nifti(tmp_path / "a.nii.gz", image)
    for name in ("a.npy", "a.nii.gz"):
        np.testing.assert_array_equal(read_slice(tmp_path / name), image)
    np.save(tmp_path / "vol.npy", np.random.rand(20, 20, 5))
    with pytest.raises(BadScan, match=r"not a 2D slice"):
        read_slice(tmp_path / "vol.npy")
    Image.fromarray(np.random.randint(0, 255, (20, 20, 3), dtype=np.uint8)).save(tmp_path / "c.png")
    with pytest.raises(BadScan, match="colour image"):
        read_slice(tmp_path / "c.png")
    grey = np.random.randint(1, 255, (20, 20), dtype=np.uint8)
    Image.fromarray(grey).convert("LA").save(tmp_path / "la.png")  # grey with an alpha channel
    Image.fromarray(grey).convert("P").save(tmp_path / "p.png")  # a palette of greys
    for name in ("la.png", "p.png"):
        np.testing.assert_array_equal(read_slice(tmp_path / name), grey.astype(np.float32))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(BadScan, match="unreadable"):
        read_slice(tmp_path / "broken.png")


def test_a_slice_pair_is_scaled_inside_the_brain_and_resized(tmp_path):
    (t1, t2), = _slices(0, levels=(24,))
    _png(tmp_path / "t1.png", t1)
    np.save(tmp_path / "t2.npy", t2)
    a, b = prepare_slice_pair(tmp_path / "t1.png", tmp_path / "t2.npy", 32)
    assert a.shape == b.shape == (32, 32)
    assert a.min() == b.min() == -1.0 and a.max() <= 1.0 and b.max() <= 1.0
    # One support for both contrasts: outside the T1 brain both are -1 (inside, the darkest
    # percentile of either may be too).
    assert ((a == -1) != (b == -1)).float().mean() < 0.05
    assert (a[[0, -1]] == -1).all() and (b[:, [0, -1]] == -1).all()  # a margin around the brain
    assert 0.3 < (a > -1).float().mean() < 0.9  # the brain fills most of the square
    np.save(tmp_path / "small.npy", t2[:40])
    with pytest.raises(BadScan, match="aligned pixel for pixel"):
        prepare_slice_pair(tmp_path / "t1.png", tmp_path / "small.npy", 32)
    np.save(tmp_path / "other.npy", np.roll(t2, 20, axis=1))
    with pytest.raises(BadScan, match="Dice"):
        prepare_slice_pair(tmp_path / "t1.png", tmp_path / "other.npy", 32)


def test_a_2d_task_on_slices_splits_by_subject_and_skips_bad_subjects(tmp_path):
    root = _dataset(tmp_path / "slices")
    _png(root / "s4" / "a_t2.png", np.roll(_slices(4, levels=(24,))[0][1], 20, axis=0))  # misaligned
    np.save(root / "s1" / "z028_T1.npy", np.zeros((SIZE, SIZE, 1)))  # a blank edge slice
    spec = datasets.source_task(datasets.get_task("phantom-2d"), "paired-slices", root)
    with pytest.warns(UserWarning, match="6 item"):  # every skip counted, and said
        data = datasets.build_task_data(spec, 32, tmp_path / "cache", 0, progress=False)
    skipped = dict(data.skipped)
    assert skipped["s4"].startswith("no usable slice pair") and "Dice" in skipped["s4"]
    assert skipped["s1/z028_T1.npy"].endswith("the image is empty")  # the slice, not s1
    assert sum(len(v) for v in data.subjects.values()) == 5
    seen = set()
    for name in ("train", "val", "test"):
        split = data.split(name)
        assert split.t1.shape[1:] == (1, 32, 32) and split.t1.shape == split.t2.shape
        assert split.t1.min() == -1.0 and split.t1.max() <= 1.0
        ids = set(data.subjects[name])
        assert not ids & seen
        seen |= ids
    counts = {s: n for s, n in zip(data.subjects["train"] + data.subjects["val"]
                                   + data.subjects["test"],
                                   torch.cat([data.split(n).subject for n in ("train", "val", "test")])
                                   .bincount().tolist())}
    assert counts["s1"] == 2 and counts["s2"] == 2 and counts["s0"] == 1


def _bench(*args, cache: Path) -> subprocess.CompletedProcess:
    env = {"BENCH_CACHE": str(cache), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def test_slices_on_a_3d_task_exit_2_and_list_sources_names_the_layout(tmp_path):
    root = _dataset(tmp_path / "slices")
    done = _bench("run", "--source", "paired-slices", "--data-root", str(root), "--task", "3d",
                  "--profile", "smoke", "--out", str(tmp_path / "run"), cache=tmp_path / "c")
    assert done.returncode == 2 and not (tmp_path / "run").exists()
    assert done.stderr.count("\n") == 1 and "holds 2D slices" in done.stderr
    listed = _bench("list", "sources", cache=tmp_path / "c")
    assert listed.returncode == 0
    assert any(line.startswith("paired-slices") and "2D" in line
               for line in listed.stdout.splitlines())


@pytest.mark.slow
def test_inspect_and_a_smoke_run_on_slices(tmp_path):
    root = _dataset(tmp_path / "slices")
    shown = _bench("data", "inspect", "--source", "paired-slices", "--data-root", str(root),
                   "--profile", "smoke", "--out", str(tmp_path / "inspect"), "--no-progress",
                   cache=tmp_path / "c")
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "  s1: 3 T1/T2 slice pair(s): z020_T1.npy + z020_T2.npy" in shown.stdout
    assert (tmp_path / "inspect" / "paired-slices-2d-montage.png").is_file()
    out = tmp_path / "run"
    done = _bench("run", "--source", "paired-slices", "--data-root", str(root), "--strategy",
                  "scratch", "--profile", "smoke", "--seeds", "1", "--device", "cpu",
                  "--no-progress", "--out", str(out), cache=tmp_path / "c")
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert row["task"] == "paired-slices-2d" and row["status"] == "ok"
    assert row["settings"]["data_source"] == "paired-slices"
