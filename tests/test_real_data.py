"""Real sources end to end: task files and `--source`, preprocessing into cached splits,
skipped scans counted, `bench data inspect`, and a smoke `bench run` on the real scans in
$BENCH_REAL_DATA (skipped without them)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import datasets
from ground.errors import BenchError

REPO = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("BENCH_REAL_DATA", "/nonexistent"))
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason="set BENCH_REAL_DATA to the real scans")


def _head(seed: int, contrast: str) -> np.ndarray:
    """A head-like ellipsoid with a darker core (T1) or a brighter core (T2)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:40, :40, :40] - 20.0
    radius = 14 + seed % 3
    head = (x / radius) ** 2 + (y / (radius - 2)) ** 2 + (z / (radius - 3)) ** 2 < 1
    core = (x / 6) ** 2 + (y / 6) ** 2 + (z / 6) ** 2 < 1
    value = np.where(core, 300.0 if contrast == "t1" else 900.0, 700.0 if contrast == "t1" else 400.0)
    return np.where(head, value + rng.normal(0, 20, head.shape), 0).astype(np.float32)


def _write(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.diag([1.0, 1.0, 1.0, 1.0])), str(path))
    return path


def _paired_folder(root: Path, n: int) -> Path:
    for i in range(n):
        _write(root / f"subj{i:02d}" / f"subj{i:02d}_T1w.nii.gz", _head(i, "t1"))
        _write(root / f"subj{i:02d}" / f"subj{i:02d}_T2w.nii.gz", _head(i, "t2"))
    return root


def _task(tmp_path: Path, root: Path, dims: int = 2, splits: str | None = None) -> Path:
    text = [f'name = "mine-{dims}d"', 'source = "paired-folder"', f'data_root = "{root}"',
            f"dims = {dims}", 'target = "t1"', 'other = "t2"', 'modalities = ["t1", "t2"]']
    if splits:
        text += ["[splits]", splits]
    if dims == 2:
        text += ["[slicing]", 'axis = "axial"', "per_subject = 4", "min_brain_fraction = 0.05"]
    path = tmp_path / f"mine-{dims}d.toml"
    path.write_text("\n".join(text) + "\n")
    return path


def test_a_task_file_on_a_paired_folder_builds_subject_level_splits(tmp_path):
    root = _paired_folder(tmp_path / "scans", 5)
    (root / "subj05").mkdir()
    _write(root / "subj05" / "subj05_T1w.nii.gz", _head(5, "t1"))  # one contrast only
    _write(root / "subj06" / "subj06_T1w.nii.gz", _head(6, "t1"))
    (root / "subj06" / "subj06_T2w.nii.gz").write_bytes(b"not a nifti")  # corrupt
    spec = datasets.get_task(str(_task(tmp_path, root, splits="train = 3\nval = 1\ntest = 1")))
    with pytest.warns(UserWarning, match="2 item"):  # the skips are said, not only counted
        data = datasets.build_task_data(spec, 16, tmp_path / "cache", progress=False)
    assert [len(data.subjects[n]) for n in ("train", "val", "test")] == [3, 1, 1]
    assert len({s for ids in data.subjects.values() for s in ids}) == 5  # no subject twice
    assert data.train.t1.shape == (12, 1, 16, 16) and data.test.t2.shape == (4, 1, 16, 16)
    assert float(data.train.t1.min()) == -1.0 and float(data.train.t1.max()) <= 1.0
    skipped = dict(data.skipped)
    assert set(skipped) == {"subj05", "subj06"}  # both counted, each with its reason
    with pytest.warns(UserWarning, match="2 item"):
        again = datasets.build_task_data(spec, 16, tmp_path / "cache", progress=False)
    assert again.fingerprint == data.fingerprint and again.skipped == data.skipped  # cached


def test_an_edited_scan_rebuilds_the_cached_data(tmp_path):
    root = _paired_folder(tmp_path / "scans", 4)
    spec = datasets.get_task(str(_task(tmp_path, root, dims=3)))
    first = datasets.build_task_data(spec, 16, tmp_path / "cache", progress=False)
    _write(root / "subj00" / "subj00_T1w.nii.gz", _head(7, "t1"))
    second = datasets.build_task_data(spec, 16, tmp_path / "cache", progress=False)
    assert first.fingerprint != second.fingerprint
    assert len(list((tmp_path / "cache").glob("mine-3d-*.pt"))) == 2


def test_a_task_asking_for_more_subjects_than_exist_is_refused(tmp_path):
    root = _paired_folder(tmp_path / "scans", 3)
    spec = datasets.get_task(str(_task(tmp_path, root, splits="train = 3\nval = 1\ntest = 1")))
    with pytest.raises(BenchError, match="asks for 5 subjects .* holds 3 pairs"):
        datasets.build_task_data(spec, 16, tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_too_few_usable_subjects_after_skipping_is_an_error(tmp_path):
    root = _paired_folder(tmp_path / "scans", 4)
    _write(root / "subj01" / "subj01_T2w.nii.gz", np.full((40, 40, 40), 5.0, np.float32))
    spec = datasets.get_task(str(_task(tmp_path, root, dims=3)))
    with pytest.raises(BenchError, match="3 usable subject.*1 skipped.*subj01"):
        datasets.build_task_data(spec, 16, tmp_path / "cache", progress=False)


@pytest.mark.parametrize("line, message", [
    ('modalities = ["t1", "t2", "flair"]', "unknown modality name"),
    ('source = "nosuch"', "unknown source 'nosuch'"),
    ("spacing = -1", "spacing must be a positive"),
])
def test_bad_task_files_are_one_line_errors(tmp_path, line, message):
    path = _task(tmp_path, tmp_path / "scans")
    key = line.split(" =")[0]
    text = [t for t in path.read_text().splitlines() if not t.startswith(key + " =")]
    path.write_text("\n".join([line] + text) + "\n")
    with pytest.raises(BenchError, match=message):
        datasets.get_task(str(path))


def _bench(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "BENCH_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def test_source_without_data_root_and_a_missing_root_exit_2_writing_nothing(tmp_path):
    out = tmp_path / "run"
    for extra in ([], ["--data-root", str(tmp_path / "missing")]):
        done = _bench("run", "--source", "bids", *extra, "--profile", "smoke", "--out", str(out),
                      "--no-progress", cache=tmp_path / "cache")
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not out.exists()


def test_data_inspect_lists_pairs_skips_and_splits_and_writes_a_montage(tmp_path):
    root = _paired_folder(tmp_path / "scans", 4)
    _write(root / "lonely" / "lonely_T1w.nii.gz", _head(9, "t1"))
    done = _bench("data", "inspect", "--source", "paired-folder", "--data-root", str(root),
                  "--task", "2d", "--profile", "smoke", "--out", str(tmp_path / "inspect"),
                  "--no-progress", cache=tmp_path / "cache")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("4 subjects")
    assert any(line.strip().startswith("skipped lonely:") for line in lines)
    assert any("subj00_T1w.nii.gz 40x40x40 at 1x1x1 mm" in line for line in lines)
    assert any(line.startswith("splits: train 2 subjects") for line in lines)
    montage = tmp_path / "inspect" / "paired-folder-2d-montage.png"
    assert montage.stat().st_size > 1000


@needs_real
@pytest.mark.slow
def test_smoke_run_on_real_scans(tmp_path):
    # Two BraTS cases and the IXI subject as one paired-folder source: three subjects, one split
    # each; the IXI pair also exercises T2 on another grid than T1.
    root = tmp_path / "scans"
    for case in ("BraTS-GLI-00000-000", "BraTS-GLI-00001-000"):
        (root / case).mkdir(parents=True)
        for suffix in ("t1n", "t2w"):
            (root / case / f"{case}-{suffix}.nii.gz").symlink_to(
                REAL / "brats" / case / f"{case}-{suffix}.nii.gz")
    (root / "IXI002").mkdir()
    for contrast in ("T1", "T2"):
        (root / "IXI002" / f"IXI002-Guys-0828-{contrast}.nii.gz").symlink_to(
            REAL / "ixi" / f"IXI-{contrast}" / f"IXI002-Guys-0828-{contrast}.nii.gz")
    out = tmp_path / "run"
    done = _bench("run", "--source", "paired-folder", "--data-root", str(root), "--task", "2d",
                  "--strategy", "scratch", "--profile", "smoke", "--seeds", "1", "--device",
                  "cpu", "--no-progress", "--out", str(out), cache=tmp_path / "cache")
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert row["status"] == "ok" and row["task"] == "paired-folder-2d"
    assert row["settings"]["data_source"] == "paired-folder"
    assert row["settings"]["data_skipped"] == 0
    assert "paired-folder" in (out / "report.md").read_text()


def test_ixi_download_offline_says_where_to_get_the_archives(tmp_path, monkeypatch):
    import torchio as tio
    from urllib.error import URLError

    from datasets.ixi_download import download_ixi

    def offline(root, modalities, download):
        (root / "T1").mkdir(parents=True)  # as TorchIO does before fetching
        raise URLError("Name or service not known")

    monkeypatch.setattr(tio.datasets, "IXI", offline)
    with pytest.raises(BenchError, match=r"brain-development\.org.*IXI-T1/IXI012-HH-1211-T1"):
        download_ixi(tmp_path / "ixi")
    assert not (tmp_path / "ixi").exists()  # nothing half-made left behind


def test_a_scan_too_thin_to_resample_is_a_bad_scan(tmp_path):
    from datasets.preprocess import BadScan, prepare_pair
    t1 = _write(tmp_path / "t1.nii.gz", _head(0, "t1"))
    t2 = _write(tmp_path / "t2.nii.gz", _head(0, "t2")[:, :, 18:21])
    with pytest.raises(BadScan, match="t2.nii.gz.*too thin"):
        prepare_pair(t1, t2, 16)


def test_too_few_pairs_for_the_splits_exit_2_before_writing(tmp_path):
    root = _paired_folder(tmp_path / "scans", 2)
    out = tmp_path / "run"
    done = _bench("run", "--source", "paired-folder", "--data-root", str(root), "--task", "2d",
                  "--profile", "smoke", "--out", str(out), "--no-progress",
                  cache=tmp_path / "cache")
    assert done.returncode == 2 and "2 subject pair(s); a 2D task needs 3" in done.stderr, \
        done.stderr
    assert not out.exists()


def test_rerunning_on_edited_scans_is_refused_not_mixed(tmp_path):
    from bench.run import RunConfig, run
    root = _paired_folder(tmp_path / "scans", 4)
    spec = datasets.get_task(str(_task(tmp_path, root, dims=3)))
    cfg = RunConfig(strategies=["scratch"], tasks=[spec], out=tmp_path / "run", profile="smoke",
                    seeds=1, device="cpu", precision="fp32", cache_dir=tmp_path / "cache",
                    progress=False)
    run(cfg)
    _write(root / "subj02" / "subj02_T2w.nii.gz", _head(8, "t2"))
    with pytest.raises(BenchError, match="holds a run with data mine-3d="):
        run(cfg)


def test_a_t1_reaching_further_than_the_t2_is_still_aligned(tmp_path):
    # A raw T1 often includes the neck, which an axial T2 does not image: the alignment check
    # compares the masks only where T2 was imaged.
    from datasets.preprocess import prepare_pair
    t1 = np.zeros((40, 40, 80), np.float32)
    t1[:, :, 40:] = _head(0, "t1")
    y, x = np.mgrid[:40, :40] - 20.0
    neck = (x ** 2 + y ** 2 < 100)[..., None] & (np.arange(80) < 52)  # joins the head
    t1[neck & (t1 == 0)] = 600.0
    shifted = np.diag([1.0, 1.0, 1.0, 1.0])
    shifted[2, 3] = 40.0  # T2's first slice is T1's slice 40: it sees the head only
    t2 = _head(0, "t2")
    t2[neck[:, :, 40:] & (t2 == 0)] = 500.0  # the part of the neck T2 does see
    t1_path = _write(tmp_path / "t1.nii.gz", t1)
    nib.save(nib.Nifti1Image(t2, shifted), str(tmp_path / "t2.nii.gz"))
    prepared = prepare_pair(t1_path, tmp_path / "t2.nii.gz", 32)
    assert prepared.brain.sum() > 1.3 * prepared.t2_mask.sum()  # the neck is in T1's mask only


def test_tuning_on_edited_scans_is_refused_not_mixed(tmp_path):
    from bench.tuning.tune import TuneConfig, tune
    root = _paired_folder(tmp_path / "scans", 3)
    spec = datasets.get_task(str(_task(tmp_path, root)))
    cfg = TuneConfig(strategies=["scratch"], tasks=[spec], out=tmp_path / "tune", trials=1,
                     profile="smoke", device="cpu", precision="fp32",
                     cache_dir=tmp_path / "cache", progress=False)
    tune(cfg)
    _write(root / "subj02" / "subj02_T2w.nii.gz", _head(8, "t2"))
    with pytest.raises(BenchError, match="was tuned on other data"):
        tune(cfg)
