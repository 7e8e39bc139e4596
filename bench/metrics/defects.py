"""Visible defects of generated images that the distances summarize but do not name: boxes of
background inside the brain (cutout leaking into the samples: the augmentation erases with the
background value) and period-2 checkerboard energy (stride-2 transposed convolutions, Odena et
al. 2016). Both are measured per image; docs/evaluation.md gives their levels on real images,
and the generator's design record (docs/stabilized-recipe.md) uses them.

Written here: no imaging library detects either.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

BACKGROUND = -1.0
# A voxel within this of the background value counts as background; the phantom's darkest
# tissue (CSF in T1w) sits well above it.
BACKGROUND_TOLERANCE = 0.1
BOX_SIDE = 1 / 6   # a box's every side is at least this share of the image side
BOX_FILL = 0.75    # a wall: the box fills this share of a face, and brain this share beyond it


def _foreground(images: torch.Tensor) -> np.ndarray:
    return (images[:, 0] > BACKGROUND + BACKGROUND_TOLERANCE).cpu().numpy()


def _hull(fg: np.ndarray) -> np.ndarray:
    """The convex hull of the foreground, as a mask (the foreground itself where it spans no
    volume: too few voxels, or all on one line or plane)."""
    points = np.argwhere(fg)
    if len(points) <= fg.ndim:
        return fg.copy()
    try:
        planes = ConvexHull(points).equations  # inside: normal . x + offset <= 0 for every face
    except QhullError:
        return fg.copy()
    grid = np.indices(fg.shape).reshape(fg.ndim, -1).T
    inside = (grid @ planes[:, :-1].T + planes[:, -1] <= 1e-9).all(1)
    return inside.reshape(fg.shape)


def _walls(region: np.ndarray, fg: np.ndarray, hull: np.ndarray, where: tuple) -> int:
    """How many faces of the region's bounding box are straight walls: the region fills the face
    and the voxels just beyond it are brain, as along an erased box's inner edges."""
    walls = 0
    for axis in range(region.ndim):
        for face, step in ((0, -1), (-1, 1)):
            edge = where[axis].start if face == 0 else where[axis].stop - 1
            beyond = edge + step
            if not 0 <= beyond < fg.shape[axis]:
                continue
            outside = list(where)
            outside[axis] = beyond
            filled = np.take(region, face, axis=axis)
            brain = fg[tuple(outside)][filled] & hull[tuple(outside)][filled]
            walls += bool(filled.mean() >= BOX_FILL and brain.size and brain.mean() >= BOX_FILL)
    return walls


def _box_in_slice(fg: np.ndarray) -> bool:
    hull = _hull(fg)
    labels, _ = ndimage.label(hull & ~fg)
    for index, where in enumerate(ndimage.find_objects(labels), start=1):
        if min(s.stop - s.start for s in where) < BOX_SIDE * min(fg.shape):
            continue
        if _walls(labels[where] == index, fg, hull, where) >= fg.ndim:
            return True
    return False


def dark_boxes(images: torch.Tensor) -> torch.Tensor:
    """Per image (or volume): whether it holds a box of background inside the brain. In an
    image: a connected region of background inside the head's convex hull, every side at least
    BOX_SIDE of the image side, with a straight wall on each axis at least (a bounding-box face
    it fills, with brain right beyond it): an erased box inside the brain shows all its faces
    as walls, one cut into the outline one per axis, and the real phantom's gaps (round holes,
    the spaces between the cerebellum and the temporal lobes) fewer. In a volume: such a box in
    at least BOX_SIDE of its axial slices (a cube's slices; in 3D the region between the brain
    and its hull joins a cube cut into the outline, which hides its walls)."""
    out = []
    for fg in _foreground(images):
        if fg.ndim == 2:
            out.append(_box_in_slice(fg))
        else:
            hits = sum(_box_in_slice(plane) for plane in fg)
            out.append(hits >= BOX_SIDE * len(fg))
    return torch.tensor(out)


def checkerboard_energy(images: torch.Tensor) -> torch.Tensor:
    """Per image: the share of the brain's power spectrum at period 2 along any axis (the
    highest frequency, where a transposed convolution's uneven overlap puts its pattern). The
    brain's mean is removed and the background zeroed first, so the outline's edge adds little."""
    x = images[:, 0].double()
    fg = torch.from_numpy(_foreground(images)).to(x.device)
    count = fg.flatten(1).sum(1).clamp_min(1)
    mean = (x * fg).flatten(1).sum(1) / count
    y = (x - mean.view(-1, *[1] * (x.dim() - 1))) * fg
    power = torch.fft.fftn(y, dim=tuple(range(1, x.dim()))).abs().square()
    nyquist = torch.zeros(x.shape[1:], dtype=torch.bool)
    for axis, n in enumerate(x.shape[1:]):
        index = [slice(None)] * (x.dim() - 1)
        index[axis] = n // 2
        nyquist[tuple(index)] = True
    return (power[:, nyquist].sum(1) / power.flatten(1).sum(1).clamp_min(1e-12)).float()
