"""One subject's paired 2D T1/T2 slices (PNG, .npy or 2D NIfTI) -> images laid out as a 2D
task's: a square around the brain, resized to size^2, in [-1, 1] inside the T1 brain mask and
exactly -1 outside it, as the volumes of datasets/preprocess.py give.

A slice file carries no orientation or spacing that all three formats share, so a slice is
used as stored, and a T1 and its T2 must already be aligned pixel for pixel (same shape).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchio as tio

from datasets.anatomy import MARGIN_FRACTION
from datasets.preprocess import (MIN_MASK_DICE, NORM_PERCENTILES, BadScan, check_values,
                                 foreground)

MIN_SIDE = 8  # pixels; a thumbnail or a line is not a brain slice


def _load(path: Path) -> np.ndarray:
    name = path.name.lower()
    if name.endswith(".png"):
        from PIL import Image
        with Image.open(path) as image:
            if image.mode in ("P", "PA"):  # palette indices: their colours are the image
                image = image.convert("RGBA")
            elif image.mode in ("LA", "La"):  # grey with alpha: the grey band
                image = image.getchannel("L")
            data = np.asarray(image)
        if data.ndim == 3:  # RGB(A) export of a grey image: every colour channel equal
            colour = data[..., :3]
            if not (colour == colour[..., :1]).all():
                raise BadScan(f"{path}: a colour image; export the slice in greyscale")
            data = colour[..., 0]
        return data
    if name.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    import nibabel as nib
    return nib.load(path).get_fdata(dtype=np.float32)


def read_slice(path: Path) -> np.ndarray:
    """A 2D float32 image with finite, non-constant pixels, or BadScan saying why not. Singleton
    axes (an N x M x 1 NIfTI or array) are dropped."""
    path = Path(path)
    try:
        data = _load(path)
    except BadScan:
        raise
    except Exception as err:  # truncated PNG, pickled .npy, bad NIfTI header: all unusable
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise BadScan(f"{path}: unreadable ({reason})") from None
    data = np.asarray(data, dtype=np.float32)
    if data.ndim > 2:
        data = data.reshape([n for n in data.shape if n != 1] or [1])
    if data.ndim != 2:
        raise BadScan(f"{path}: image of shape {data.shape} is not a 2D slice; give one slice "
                      "per file (a volume belongs in paired-folder)")
    if min(data.shape) < MIN_SIDE:
        raise BadScan(f"{path}: image of shape {data.shape} is too small (under {MIN_SIDE} "
                      "pixels a side) to be a brain slice")
    check_values(data, path, "pixels")
    return data


def _square(images: list[np.ndarray], mask: np.ndarray) -> list[np.ndarray]:
    """Each image cut to the square around the mask's bounding box grown by the phantom's
    margin, padded with its own minimum where the square leaves the image."""
    idx = np.argwhere(mask)
    low, high = idx.min(axis=0), idx.max(axis=0) + 1
    side = int(np.ceil((high - low).max() * (1 + 2 * MARGIN_FRACTION)))
    r, c = (low + high) // 2 - side // 2 + side  # in the image padded by `side`
    return [np.pad(image, side, constant_values=image.min())[r:r + side, c:c + side]
            for image in images]


def _resize(image: np.ndarray, size: int) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)[0, 0]


def prepare_slice_pair(t1_path: Path, t2_path: Path, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """T1 and T2 of one slice as aligned size^2 images in [-1, 1], background -1."""
    t1, t2 = read_slice(t1_path), read_slice(t2_path)
    if t1.shape != t2.shape:
        raise BadScan(f"{t2_path}: shape {t2.shape} differs from {t1_path}'s {t1.shape}; paired "
                      "slices must be aligned pixel for pixel")
    brain = foreground(t1)
    t1, t2, square_mask = _square([t1, t2, brain.astype(np.float32)], brain)
    t1, t2 = _resize(t1, size), _resize(t2, size)
    brain = _resize(square_mask, size) > 0.5
    t2_mask = torch.from_numpy(foreground(t2.numpy()))
    dice = 2 * (brain & t2_mask).sum() / max(int(brain.sum() + t2_mask.sum()), 1)
    if dice < MIN_MASK_DICE:
        raise BadScan(f"{t2_path}: its foreground matches the brain of {t1_path} with Dice "
                      f"{float(dice):.2f} (< {MIN_MASK_DICE}); are they the same slice of the "
                      "same subject?")
    # The volumes' intensity scaling (datasets/preprocess.py), on a one-voxel-deep image.
    subject = tio.Subject(t1=tio.ScalarImage(tensor=t1[None, ..., None]),
                          t2=tio.ScalarImage(tensor=t2[None, ..., None]),
                          brain=tio.LabelMap(tensor=brain[None, ..., None]))
    subject = tio.RescaleIntensity((-1.0, 1.0), percentiles=NORM_PERCENTILES,
                                   masking_method="brain")(subject)
    return tuple(subject[n].data[0, ..., 0].float().masked_fill_(~brain, -1.0)
                 for n in ("t1", "t2"))


def prepare_slices(slices: tuple[tuple[Path, Path], ...], size: int
                   ) -> tuple[tuple[torch.Tensor, torch.Tensor], list[tuple[Path, str]]]:
    """A subject's slice pairs: (T1, T2) as [K, 1, size, size] of the usable ones, and each
    other pair's T1 path with the reason (an empty edge slice of an exported volume, say).
    BadScan when none is usable."""
    pairs, bad = [], []
    for t1, t2 in slices:
        try:
            pairs.append(prepare_slice_pair(t1, t2, size))
        except BadScan as err:
            bad.append((t1, str(err)))
    if not pairs:
        raise BadScan(f"no usable slice pair (first: {bad[0][1]})")
    return ((torch.stack([a for a, _ in pairs])[:, None],
             torch.stack([b for _, b in pairs])[:, None]), bad)
