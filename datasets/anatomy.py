"""Real brain anatomy for the phantom: MNI152 2009 tissue probability maps shipped inside nilearn.

Nothing is downloaded: nilearn's wheel carries the 1 mm template, its grey/white matter maps and
brain mask. CSF is what is left of the (hole-filled) brain mask once GM and WM are taken out, so
the ventricles, which the mask contains, come out as CSF.

Volumes handed on from here use one fixed array orientation so a 2D slice needs no reorienting:
axis 0 runs superior->inferior (axial levels), axis 1 anterior->posterior (image rows, nose up),
axis 2 left->right (image columns).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

# Room around the brain's bounding box so random rotations and deformations do not push the brain
# out of the field of view, and no slice has brain touching its edge.
MARGIN_FRACTION = 0.1


@dataclass(frozen=True)
class TissueMaps:
    """Full-resolution maps in nilearn's own voxel order (RAS, 197x233x189), read-only."""

    csf: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    brain: np.ndarray  # bool, the filled brain mask
    affine: np.ndarray  # voxel -> MNI mm


@dataclass(frozen=True)
class WorkingGrid:
    """Undeformed tissue maps on the cube the phantom is rendered on."""

    maps: torch.Tensor  # float32 [3, S, S, S]: CSF, GM, WM probabilities (read-only by convention)
    affine: np.ndarray  # working voxel (axis 0, 1, 2) -> MNI mm, for writing NIfTI files
    spacing_mm: float  # isotropic voxel size of the cube


def _readonly(a: np.ndarray) -> np.ndarray:
    # The maps are cached and shared; a caller writing into them would corrupt every later subject.
    a = np.ascontiguousarray(a, dtype=np.float32) if a.dtype != bool else np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@lru_cache(maxsize=1)
def load_tissue_maps() -> TissueMaps:
    # nilearn is slow to import; only pay for it when the phantom is actually rendered.
    from nilearn import datasets as nds
    from scipy import ndimage

    mask_img = nds.load_mni152_brain_mask(resolution=1)
    brain = ndimage.binary_fill_holes(np.asarray(mask_img.dataobj) > 0)
    gm = np.asarray(nds.load_mni152_gm_template(resolution=1).dataobj, dtype=np.float32)
    wm = np.asarray(nds.load_mni152_wm_template(resolution=1).dataobj, dtype=np.float32)
    gm = np.where(brain, gm, 0.0)
    wm = np.where(brain, wm, 0.0)
    csf = np.clip(brain.astype(np.float32) - gm - wm, 0.0, None)
    return TissueMaps(csf=_readonly(csf), gm=_readonly(gm), wm=_readonly(wm),
                      brain=_readonly(brain), affine=np.asarray(mask_img.affine, dtype=np.float64))


def _to_canonical(a: np.ndarray) -> np.ndarray:
    # RAS (i=x, j=y, k=z) -> (superior->inferior, anterior->posterior, left->right)
    return a.transpose(2, 1, 0)[::-1, ::-1, :]


@lru_cache(maxsize=1)
def _brain_cube() -> tuple[torch.Tensor, np.ndarray]:
    """Tissue maps cropped to the brain and zero-padded to a cube; plus cube voxel -> MNI mm."""
    maps = load_tissue_maps()
    shape = maps.brain.shape
    brain = _to_canonical(maps.brain)
    idx = np.argwhere(brain)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    extent = hi - lo
    # A cube keeps the aspect ratio when it is resized to the working grid.
    side = int(math.ceil(extent.max() * (1 + 2 * MARGIN_FRACTION)))
    before = (side - extent) // 2
    cube = torch.zeros((3, side, side, side), dtype=torch.float32)
    region = tuple(slice(int(b), int(b + e)) for b, e in zip(before, extent))
    crop = tuple(slice(int(l), int(h)) for l, h in zip(lo, hi))
    for channel, m in enumerate((maps.csf, maps.gm, maps.wm)):
        cube[(channel, *region)] = torch.from_numpy(_to_canonical(m)[crop].copy())
    # cube voxel u -> canonical voxel (u + lo - before) -> nilearn voxel -> MNI mm
    shift = np.eye(4)
    shift[:3, 3] = lo - before
    canon_to_ras = np.array([[0, 0, 1, 0],
                             [0, -1, 0, shape[1] - 1],
                             [-1, 0, 0, shape[2] - 1],
                             [0, 0, 0, 1]], dtype=np.float64)
    return cube, maps.affine @ canon_to_ras @ shift


@lru_cache(maxsize=4)
def working_grid(side: int) -> WorkingGrid:
    """The undeformed CSF/GM/WM maps resized to a side^3 cube (anti-aliased when shrinking)."""
    cube, cube_affine = _brain_cube()
    full = cube.shape[-1]
    if side <= full:
        # Area averaging keeps partial-volume fractions right; plain interpolation would alias.
        small = F.interpolate(cube[None], size=(side,) * 3, mode="area")[0]
    else:
        small = F.interpolate(cube[None], size=(side,) * 3, mode="trilinear", align_corners=False)[0]
    scale = full / side
    to_cube = np.diag([scale, scale, scale, 1.0])
    to_cube[:3, 3] = 0.5 * scale - 0.5  # voxel centres, as area/trilinear resizing places them
    return WorkingGrid(maps=small.clamp_(0.0, 1.0).contiguous(), affine=cube_affine @ to_cube,
                       spacing_mm=float(scale * np.linalg.norm(cube_affine[:3, 0])))
