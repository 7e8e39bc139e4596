"""One subject's T1 and T2 NIfTI files -> a paired cube laid out like the phantom's (anatomy.py).

Scans of one subject need not share a grid: IXI's T1 and T2 differ in shape, spacing and axis
order. Everything happens in world coordinates (the NIfTI affines):

1. T1 is put in canonical (RAS) axis order and resampled to an isotropic `spacing` working grid.
2. The brain's bounding box is found there (T1 foreground), grown by the phantom's margin and
   padded to a cube.
3. That cube, at size^3 voxels, is the output grid. T1 and T2 are each resampled onto it once,
   straight from their own files: one interpolation per image instead of a chain of
   resample/crop/resize, with Gaussian anti-aliasing because the output is usually coarser.
4. Percentile normalisation to [-1, 1] inside the T1 brain mask; outside it both are -1, as in
   the phantom, so a paired slice has the same support in both contrasts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torchio as tio
from scipy import ndimage

from datasets.anatomy import MARGIN_FRACTION
from ground.errors import BenchError

# Foreground rule (as FSL BET's default threshold): 10% of the way from the background level to
# the bright end of the robust range. Background is the bulk of a head scan's voxels, so the 2nd
# percentile is background (air noise, or 0 after skull stripping) and the 98th is tissue.
ROBUST_RANGE = (2.0, 98.0)
FOREGROUND_FRACTION = 0.1
NORM_PERCENTILES = (0.5, 99.5)  # as nnU-Net: a few hot or dark voxels do not set the scale
MIN_OVERLAP = 0.5  # of the smaller scan's world bounding box
# Aligned real pairs (IXI, BraTS) reach 0.97-0.99; below this the T2 is misplaced or cut off.
MIN_MASK_DICE = 0.8


class BadScan(BenchError):
    """A scan that cannot be used; the message names the file and what is wrong / what to do."""


@dataclass
class Prepared:
    t1: torch.Tensor  # float32 [S, S, S] in [-1, 1], background (outside `brain`) exactly -1
    t2: torch.Tensor  # same grid, voxel-for-voxel aligned with t1, background -1
    brain: torch.Tensor  # bool [S, S, S]: T1's brain/foreground mask (used for slicing)
    t2_mask: torch.Tensor  # bool [S, S, S]: T2's own foreground mask, computed independently
    # "t1"/"t2": path, shape, spacing_mm, orientation of each file; "spacing_mm": output voxel
    # size; "affine": output voxel (axis 0, 1, 2) -> world mm, for writing NIfTI files.
    info: dict


def read_scan(path: Path) -> tio.ScalarImage:
    """A single 3D NIfTI volume with finite, non-constant voxels, or BadScan saying why not."""
    path = Path(path)
    if not path.is_file():
        raise BadScan(f"{path}: no such file")
    try:
        img = nib.load(path)
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise BadScan(f"{path}: not a NIfTI file ({type(img).__name__}); convert it to .nii.gz")
        data = img.get_fdata(dtype=np.float32)
    except BadScan:
        raise
    except Exception as err:
        # Corruption surfaces as many types (gzip, zlib, EOF, header errors): all mean unusable.
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise BadScan(f"{path}: unreadable or not a NIfTI file ({reason})") from None
    # A 4D file holding one volume (shape X, Y, Z, 1) is still a 3D scan.
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim > 3:
        raise BadScan(f"{path}: {data.ndim}D image of shape {data.shape}; "
                      "a single 3D volume is needed (split the series first)")
    if data.ndim < 3 or min(data.shape) < 2:
        raise BadScan(f"{path}: image of shape {data.shape} is not a 3D volume")
    if min(data.shape) < 4:  # a localizer or thin slab; resampling needs 4 voxels a side
        raise BadScan(f"{path}: image of shape {data.shape} is too thin (under 4 voxels on an "
                      "axis) to be a brain volume")
    check_values(data, path, "voxels")
    affine = img.affine
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise BadScan(f"{path}: the voxel-to-world affine is degenerate; fix the NIfTI header")
    return tio.ScalarImage(tensor=torch.from_numpy(data[None]), affine=affine)


def check_values(data: np.ndarray, path: Path, unit: str) -> None:
    """BadScan unless every value is finite and not all are the same."""
    bad = int(data.size - np.count_nonzero(np.isfinite(data)))
    if bad:
        raise BadScan(f"{path}: {bad} {unit} are NaN or infinite")
    if data.min() == data.max():
        raise BadScan(f"{path}: every {unit[:-1]} is {data.flat[0]:g}; the image is empty")


def foreground(volume: np.ndarray) -> np.ndarray:
    """The head (or, in a skull-stripped scan, the brain): robust threshold, largest connected
    component, enclosed holes (ventricles, dark CSF in T1) filled."""
    lo, hi = np.percentile(volume, ROBUST_RANGE)
    if hi <= lo:  # the object fills under 2% of the volume: fall back to the full range
        lo, hi = float(volume.min()), float(volume.max())
    # Holes first: in a scan with a skull, the bright scalp encloses the dark skull and the brain,
    # and filling makes them one head instead of two components competing to be the largest.
    mask = ndimage.binary_fill_holes(volume > lo + FOREGROUND_FRACTION * (hi - lo))
    labels, count = ndimage.label(mask)
    if count > 1:
        # bincount counts background (label 0) too; drop it before picking the largest.
        mask = labels == 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
    return mask


def _world_box(image: tio.ScalarImage) -> np.ndarray:
    """[2, 3] min and max world corners of the volume (voxel edges, not centres)."""
    corners = np.array(list(product(*[(-0.5, n - 0.5) for n in image.spatial_shape])))
    world = nib.affines.apply_affine(image.affine, corners)
    return np.stack([world.min(axis=0), world.max(axis=0)])


def _check_overlap(t1: tio.ScalarImage, t2: tio.ScalarImage, t1_path: Path, t2_path: Path):
    a, b = _world_box(t1), _world_box(t2)
    common = np.prod(np.clip(np.minimum(a[1], b[1]) - np.maximum(a[0], b[0]), 0, None))
    smaller = min(np.prod(a[1] - a[0]), np.prod(b[1] - b[0]))
    if common < MIN_OVERLAP * smaller:
        raise BadScan(f"{t2_path}: covers only {common / smaller:.0%} of the space shared with "
                      f"{t1_path}; are they the same subject, with correct NIfTI affines?")


def _describe(image: tio.ScalarImage, path: Path) -> dict:
    return {"path": str(path), "shape": tuple(int(n) for n in image.spatial_shape),
            "spacing_mm": tuple(round(float(s), 4) for s in image.spacing),
            "orientation": "".join(image.orientation)}


def _output_grid(t1: tio.ScalarImage, size: int, spacing: float) -> np.ndarray:
    """Affine (RAS-ordered voxel -> world) of the size^3 cube around T1's brain."""
    work = tio.Resample(spacing, antialias=True)(tio.ToCanonical()(t1))
    brain = foreground(work.data[0].numpy())
    idx = np.argwhere(brain)
    side = math.ceil((idx.max(axis=0) - idx.min(axis=0) + 1).max() * (1 + 2 * MARGIN_FRACTION))
    # CropOrPad centres the cube on the mask's bounding box; only its affine is needed.
    mask = tio.LabelMap(tensor=torch.from_numpy(brain[None].astype(np.uint8)), affine=work.affine)
    cube = tio.CropOrPad((side,) * 3, mask_name="brain")(tio.Subject(brain=mask)).brain
    scale = side / size
    to_cube = np.diag([scale, scale, scale, 1.0])
    to_cube[:3, 3] = 0.5 * scale - 0.5  # output voxel centres tile the cube's extent
    return cube.affine @ to_cube


def _phantom_order(a: np.ndarray) -> torch.Tensor:
    # RAS (x: L->R, y: P->A, z: I->S) -> (superior->inferior, anterior->posterior, left->right)
    return torch.from_numpy(a.transpose(2, 1, 0)[::-1, ::-1, :].copy())


def prepare_pair(t1_path: Path, t2_path: Path, size: int, spacing: float = 1.0) -> Prepared:
    """T1 and T2 of one subject as aligned size^3 cubes in the phantom's orientation and range."""
    if size < 2 or spacing <= 0:
        raise ValueError(f"need size >= 2 and spacing > 0, got {size} and {spacing}")
    t1_path, t2_path = Path(t1_path), Path(t2_path)
    t1, t2 = read_scan(t1_path), read_scan(t2_path)
    _check_overlap(t1, t2, t1_path, t2_path)

    affine = _output_grid(t1, size, spacing)
    pair = tio.Resample(((size,) * 3, affine), antialias=True)(tio.Subject(t1=t1, t2=t2))
    brain = foreground(pair.t1.data[0].numpy())
    t2_mask = foreground(pair.t2.data[0].numpy())
    # Compared only where T2 was imaged: a raw T1 often reaches further down the neck than an
    # axial T2, which says nothing about whether the two are aligned.
    seen = tio.Resample(((size,) * 3, affine), image_interpolation="nearest")(
        tio.ScalarImage(tensor=torch.ones_like(t2.data), affine=t2.affine)).data[0].numpy() > 0.5
    inside = (brain & seen).sum() + (t2_mask & seen).sum()
    overlap = 2 * np.count_nonzero(brain & t2_mask & seen) / max(inside, 1)
    if overlap < MIN_MASK_DICE:
        # Overlapping boxes do not guarantee overlapping heads, and a pair whose T2 misses much
        # of the T1 brain would teach T1 -> T2 correspondences that are not there.
        raise BadScan(f"{t2_path}: its foreground matches the brain of {t1_path} with Dice "
                      f"{overlap:.2f} (< {MIN_MASK_DICE}); are they the same subject, with "
                      "correct NIfTI affines and a T2 that covers the whole brain?")
    pair.add_image(tio.LabelMap(tensor=torch.from_numpy(brain[None]), affine=affine), "brain")
    pair = tio.RescaleIntensity((-1.0, 1.0), percentiles=NORM_PERCENTILES,
                                masking_method="brain")(pair)

    brain_t = _phantom_order(brain)
    t1_out = _phantom_order(pair.t1.data[0].numpy()).float().masked_fill_(~brain_t, -1.0)
    t2_out = _phantom_order(pair.t2.data[0].numpy()).float().masked_fill_(~brain_t, -1.0)
    # Output index (a0, a1, a2) is RAS-ordered index (a2, S-1-a1, S-1-a0), see _phantom_order.
    to_ras_index = np.array([[0, 0, 1, 0], [0, -1, 0, size - 1], [-1, 0, 0, size - 1],
                             [0, 0, 0, 1]], dtype=np.float64)
    info = {"t1": _describe(t1, t1_path), "t2": _describe(t2, t2_path),
            "spacing_mm": float(np.linalg.norm(affine[:3, 0])),
            "affine": affine @ to_ras_index}
    return Prepared(t1=t1_out, t2=t2_out, brain=brain_t, t2_mask=_phantom_order(t2_mask),
                    info=info)
