"""Real-scan preprocessing: validation, alignment through the affines, orientation, output range.

Scans are generated with nibabel from one analytic head defined in world (RAS) millimetres, so
the same anatomy can be stored on grids with any axis order, flips, spacing and origin.
Real data (BENCH_REAL_DATA=/path/to/shared/data) is only read, never copied.
"""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from datasets.preprocess import BadScan, Prepared, foreground, prepare_pair, read_scan

SIZE = 32
SPACING = 2.0  # mm working grid: coarse keeps the tests fast

CENTRE = np.array([10.0, -15.0, 5.0])  # head centre, deliberately off every FOV centre
SEMI_AXES = np.array([65.0, 80.0, 55.0])
# Left (-x), anterior (+y), superior (+z) of the centre, well inside the head.
MARKER, MARKER_RADIUS = CENTRE + np.array([-25.0, 30.0, 20.0]), 15.0
CONTRASTS = {  # white matter, grey matter, ventricle (CSF), marker
    "t1": (100.0, 60.0, 5.0, 300.0),
    "t2": (50.0, 80.0, 150.0, 300.0),
}


def head(world: np.ndarray, contrast: str) -> np.ndarray:
    """Intensity of the analytic head at world points [..., 3]."""
    wm, gm, csf, marker = CONTRASTS[contrast]
    r = np.linalg.norm((world - CENTRE) / SEMI_AXES, axis=-1)
    # A cerebellum below and behind: no flip or axis swap maps the head onto itself.
    cerebellum = np.linalg.norm((world - CENTRE - [0, -45, -40]) / [40, 30, 22], axis=-1) < 1
    out = np.where(r < 0.6, wm, np.where((r < 1.0) | cerebellum, gm, 0.0))
    ventricle = np.linalg.norm((world - CENTRE - [0, 5, 5]) / [10, 25, 10], axis=-1) < 1
    out = np.where(ventricle, csf, out)
    return np.where(np.linalg.norm(world - MARKER, axis=-1) < MARKER_RADIUS, marker, out)


def grid_affine(columns, shape, centre) -> np.ndarray:
    """Voxel -> world affine whose voxel axes are `columns` (mm per voxel step), FOV centred."""
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(columns, dtype=float).T
    affine[:3, 3] = np.asarray(centre) - affine[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    return affine


def sample(contrast: str, shape, affine) -> np.ndarray:
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    return head(nib.affines.apply_affine(affine, idx), contrast).astype(np.float32)


def save(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def rotation_z(degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])


# T1 as IXI stores it (LAS, anisotropic); T2 on another grid: axes permuted (S->I, L->R...),
# other spacings, shifted FOV and rotated 10 degrees about the z axis.
T1_SHAPE = (72, 100, 72)
T1_AFFINE = grid_affine([[-2.2, 0, 0], [0, 2.0, 0], [0, 0, 2.0]], T1_SHAPE, [0, 0, 0])
T2_SHAPE = (72, 100, 100)
T2_AFFINE = grid_affine((rotation_z(10) @ np.array([[0, 0, -2.5], [1.9, 0, 0], [0, 2.1, 0]]).T).T,
                        T2_SHAPE, [-5, 5, 15])


def dice(a: torch.Tensor, b: torch.Tensor) -> float:
    return 2 * (a & b).sum().item() / (a.sum() + b.sum()).item()


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("pair")
    t1 = save(d / "t1.nii.gz", sample("t1", T1_SHAPE, T1_AFFINE), T1_AFFINE)
    t2_data = sample("t2", T2_SHAPE, T2_AFFINE)
    t2 = save(d / "t2.nii.gz", t2_data, T2_AFFINE)
    # What a loader that stacks arrays without looking at the affines would see.
    naive = save(d / "t2_naive.nii.gz", t2_data, T1_AFFINE)
    return t1, t2, naive


@pytest.fixture(scope="module")
def prepared(pair_files) -> Prepared:
    t1, t2, _ = pair_files
    return prepare_pair(t1, t2, SIZE, spacing=SPACING)


def valid_volume() -> np.ndarray:
    return sample("t1", (24, 24, 24), np.diag([8.0, 8.0, 8.0, 1.0]))


def expect_bad(path: Path) -> str:
    """read_scan's one-line BadScan message for `path`."""
    with pytest.raises(BadScan) as err:
        read_scan(path)
    message = str(err.value)
    assert "\n" not in message
    return message


# -- validation: one bad scan each ----------------------------------------------------------------

def test_missing_file(tmp_path):
    path = tmp_path / "absent-T1.nii.gz"
    assert path.name in expect_bad(path)


def test_truncated_gzip(tmp_path):
    path = save(tmp_path / "cut.nii.gz", valid_volume(), np.eye(4))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert "cut.nii.gz" in expect_bad(path)


@pytest.mark.parametrize("name", ["noise.nii", "noise.nii.gz"])
def test_random_bytes(tmp_path, name):
    raw = np.random.default_rng(0).bytes(5000)
    path = tmp_path / name
    path.write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
    assert name in expect_bad(path)


def test_other_image_format_is_not_nifti(tmp_path):
    # A perfectly valid MGH volume that nibabel reads: still not what the pipeline accepts.
    path = tmp_path / "scan.mgz"
    nib.save(nib.MGHImage(valid_volume(), np.eye(4)), path)
    message = expect_bad(path)
    assert "scan.mgz" in message and "NIfTI" in message


@pytest.mark.parametrize("shape", [(24, 24), (24, 24, 1)])
def test_2d_image(tmp_path, shape):
    path = save(tmp_path / "slice.nii.gz", valid_volume()[..., 12].reshape(shape), np.eye(4))
    assert "slice.nii.gz" in expect_bad(path)


def test_4d_series(tmp_path):
    path = save(tmp_path / "series.nii.gz", np.stack([valid_volume()] * 3, axis=-1), np.eye(4))
    message = expect_bad(path)
    assert "series.nii.gz" in message and "4D" in message


def test_4d_with_one_volume_is_3d(tmp_path):
    path = save(tmp_path / "one.nii.gz", valid_volume()[..., None], np.eye(4))
    assert read_scan(path).shape == (1, 24, 24, 24)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_voxels(tmp_path, value):
    data = valid_volume()
    data[3, 4, 5] = value
    path = save(tmp_path / "holes.nii.gz", data, np.eye(4))
    message = expect_bad(path)
    assert "holes.nii.gz" in message and "1 voxels" in message


def test_constant_image(tmp_path):
    path = save(tmp_path / "flat.nii.gz", np.full((24, 24, 24), 7, np.float32), np.eye(4))
    message = expect_bad(path)
    assert "flat.nii.gz" in message and "empty" in message


def test_degenerate_affine(tmp_path):
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[2, 2] = 0.0
    img = nib.Nifti1Image(valid_volume(), np.eye(4))
    # Only the sform can hold a singular matrix; without a qform nibabel has nothing else to use.
    img.set_qform(None, code=0)
    img.set_sform(affine, code=2)
    path = tmp_path / "flat-affine.nii.gz"
    nib.save(img, path)
    assert "flat-affine.nii.gz" in expect_bad(path)


@pytest.mark.parametrize("shift_mm", [500.0, 140.0])  # disjoint; overlapping by about a third
def test_scans_that_do_not_overlap(tmp_path, pair_files, shift_mm):
    t1, _, _ = pair_files
    moved = T2_AFFINE.copy()
    moved[0, 3] += shift_mm
    t2 = save(tmp_path / "elsewhere-T2.nii.gz", sample("t2", T2_SHAPE, T2_AFFINE), moved)
    with pytest.raises(BadScan) as err:
        prepare_pair(t1, t2, SIZE, spacing=SPACING)
    message = str(err.value)
    assert "elsewhere-T2.nii.gz" in message and t1.name in message
    assert int(re.search(r"covers only (\d+)%", message).group(1)) < 50


def test_t2_that_misses_the_brain(tmp_path, pair_files):
    # Boxes overlap, but the T2's only content is in a corner the T1 head does not reach.
    t1, _, _ = pair_files
    data = np.zeros(T2_SHAPE, np.float32)
    data[:5, :5, :5] = 100.0
    t2 = save(tmp_path / "corner-T2.nii.gz", data, T2_AFFINE)
    with pytest.raises(BadScan, match="corner-T2.nii.gz"):
        prepare_pair(t1, t2, SIZE, spacing=SPACING)


def test_bad_t2_is_the_one_named(tmp_path, pair_files):
    t1, _, _ = pair_files
    with pytest.raises(BadScan) as err:
        prepare_pair(t1, tmp_path / "absent-T2.nii.gz", SIZE)
    assert "absent-T2.nii.gz" in str(err.value) and t1.name not in str(err.value)


# -- foreground -----------------------------------------------------------------------------------

def test_foreground_of_a_scan_that_is_not_skull_stripped():
    # Noisy air, a bright scalp, a dark skull, brain with a dark ventricle: the mask is the whole
    # head (holes filled, the skull included) and no noise speck outside it.
    rng = np.random.default_rng(1)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, 64)] * 3, indexing="ij")
    r = np.sqrt((x / 0.8) ** 2 + (y / 0.9) ** 2 + (z / 0.7) ** 2)
    vol = np.where(r < 0.75, 80.0, np.where(r < 0.88, 5.0, np.where(r < 1.0, 120.0, 0.0)))
    vol[np.sqrt((x / 0.1) ** 2 + (y / 0.3) ** 2 + (z / 0.1) ** 2) < 1] = 3.0
    vol = np.hypot(vol + rng.normal(0, 4, vol.shape), rng.normal(0, 4, vol.shape))
    vol[2:4, 2:4, 2:4] = 120.0  # a bright artefact outside the head
    mask = foreground(vol)
    head_mask = r < 1.0
    assert dice(torch.from_numpy(mask), torch.from_numpy(head_mask)) > 0.97
    assert not mask[2:4, 2:4, 2:4].any()


# -- the prepared pair ----------------------------------------------------------------------------

def test_output_shapes_range_and_background(prepared):
    for volume in (prepared.t1, prepared.t2):
        assert volume.shape == (SIZE,) * 3 and volume.dtype == torch.float32
        assert volume.min().item() == -1.0 and volume.max().item() == 1.0
        assert (volume[~prepared.brain] == -1).all()
        assert volume[prepared.brain].std() > 0.1  # contrast survived inside the brain
    for mask in (prepared.brain, prepared.t2_mask):
        assert mask.shape == (SIZE,) * 3 and mask.dtype == torch.bool
    # The phantom's margin: the brain fills the cube without touching any face.
    assert 0.15 < prepared.brain.float().mean() < 0.6
    for axis in range(3):
        faces = prepared.brain.movedim(axis, 0)
        assert not faces[0].any() and not faces[-1].any()
    # The two contrasts differ (T2 is not T1 copied): the ventricle is dark in one, bright in the
    # other.
    assert torch.corrcoef(torch.stack([prepared.t1[prepared.brain],
                                       prepared.t2[prepared.brain]]))[0, 1] < 0.9


def test_info(prepared, pair_files):
    info = prepared.info
    assert info["t1"]["shape"] == T1_SHAPE and info["t2"]["shape"] == T2_SHAPE
    assert info["t1"]["orientation"] == "LAS"
    assert info["t2"]["orientation"] == "IRA"
    assert np.allclose(info["t1"]["spacing_mm"], (2.2, 2.0, 2.0), atol=1e-3)
    assert np.allclose(info["t2"]["spacing_mm"], (2.5, 1.9, 2.1), atol=1e-3)
    assert info["t1"]["path"] == str(pair_files[0])
    # The cube spans the longest brain axis (160 mm) plus the 10% margins on each side.
    assert 160 * 1.2 / SIZE * 0.9 < info["spacing_mm"] < 160 * 1.2 / SIZE * 1.15


def test_t2_is_aligned_through_the_affines(prepared, pair_files):
    assert dice(prepared.brain, prepared.t2_mask) > 0.9
    # Negative control: the same T2 array read as if it shared T1's grid lands elsewhere, and
    # the pair is refused rather than handed on misaligned.
    t1, _, naive = pair_files
    with pytest.raises(BadScan) as err:
        prepare_pair(t1, naive, SIZE, spacing=SPACING)
    assert naive.name in str(err.value)
    assert float(re.search(r"Dice (\d\.\d+)", str(err.value)).group(1)) < 0.7


def _centroid(mask: torch.Tensor) -> np.ndarray:
    return np.argwhere(mask.numpy()).mean(axis=0)


@pytest.mark.parametrize("columns", [
    [[1.5, 0, 0], [0, 1.5, 0], [0, 0, 1.5]],  # RAS
    [[-1.5, 0, 0], [0, -1.5, 0], [0, 0, 1.5]],  # LPS (BraTS)
    [[0, -1.5, 0], [0, 0, -1.8], [1.2, 0, 0]],  # PIR: every axis permuted
])
def test_orientation(tmp_path, columns):
    shape = (130, 130, 130)
    affine = grid_affine(columns, shape, [0, 0, 0])
    t1 = save(tmp_path / "t1.nii.gz", sample("t1", shape, affine), affine)
    t2 = save(tmp_path / "t2.nii.gz", sample("t2", T2_SHAPE, T2_AFFINE), T2_AFFINE)
    out = prepare_pair(t1, t2, SIZE, spacing=SPACING)
    brain_centre = _centroid(out.brain)
    for volume in (out.t1, out.t2):
        marker = _centroid(volume > 0.9)
        # superior -> low axis 0, anterior -> low axis 1, left -> low axis 2
        assert (marker < brain_centre - 2).all(), (marker, brain_centre)
        # info["affine"] takes output voxels back to world millimetres.
        world = nib.affines.apply_affine(out.info["affine"], marker)
        assert np.linalg.norm(world - MARKER) < 2 * out.info["spacing_mm"]


# -- real scans -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_data() -> Path:
    root = os.environ.get("BENCH_REAL_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("set BENCH_REAL_DATA to the shared real-data folder to run this")
    return Path(root)


def _real_pair(real_data: Path, t1: str, t2: str) -> Prepared:
    t1_path, t2_path = real_data / t1, real_data / t2
    if not (t1_path.is_file() and t2_path.is_file()):
        pytest.skip(f"{t1_path} or {t2_path} is missing")
    return prepare_pair(t1_path, t2_path, 64)


def _check_real(out: Prepared):
    assert out.t1.shape == out.t2.shape == (64,) * 3
    assert (out.t1[~out.brain] == -1).all() and (out.t2[~out.brain] == -1).all()
    assert dice(out.brain, out.t2_mask) > 0.9
    # Output axes 0, 1, 2 run mostly towards world inferior (-z), posterior (-y), right (+x).
    axes = out.info["affine"][:3, :3]
    assert [int(np.argmax(abs(axes[:, i]))) for i in range(3)] == [2, 1, 0]
    assert axes[2, 0] < 0 and axes[1, 1] < 0 and axes[0, 2] > 0
    assert 1.5 < out.info["spacing_mm"] < 5.0  # a ~150-230 mm cube over 64 voxels


def test_real_ixi_pair(real_data):
    out = _real_pair(real_data, "ixi/IXI-T1/IXI002-Guys-0828-T1.nii.gz",
                     "ixi/IXI-T2/IXI002-Guys-0828-T2.nii.gz")
    _check_real(out)
    assert out.info["t1"]["shape"] == (150, 256, 256)
    assert out.info["t2"]["shape"] == (256, 256, 130)
    assert np.allclose(out.info["t1"]["spacing_mm"], (1.2, 0.9375, 0.9375), atol=1e-3)
    assert np.allclose(out.info["t2"]["spacing_mm"], (0.9375, 0.9375, 1.25), atol=1e-3)


def test_real_brats_pair(real_data):
    case = "brats/BraTS-GLI-00000-000/BraTS-GLI-00000-000"
    out = _real_pair(real_data, f"{case}-t1n.nii.gz", f"{case}-t2w.nii.gz")
    _check_real(out)
    for modality in ("t1", "t2"):
        assert out.info[modality]["shape"] == (240, 240, 155)
        assert out.info[modality]["spacing_mm"] == (1.0, 1.0, 1.0)
        assert out.info[modality]["orientation"] == "LPS"
