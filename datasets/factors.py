"""The phantom's known modes: discrete factors drawn per subject with known frequencies, each
visible in T1w and in T2w, and, in 2D, the slice level. A benchmark that knows its data's modes
counts which ones a generator dropped, as the Stacked MNIST test does for digits.

- head: the whole brain scaled (small or large), visible in every image.
- ventricles: normal, enlarged or much enlarged, a magnification around the lateral ventricles
  that pushes the tissue around them outward, as atrophy does.
- lesion: none, a white-matter lesion in the left frontal white matter, or a tumour in the right
  parietal white matter, each with its own T1/T2 relaxation times.

In 2D a slice carries its level bin (vertex to cerebellum) and the factors it shows: a slice that
does not cut the ventricles carries NOT_SHOWN for them, and one that cuts no lesion carries
"none" whatever its subject has.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Factor:
    name: str
    levels: tuple[str, ...]
    frequencies: tuple[float, ...]


# Uniform: at the default sizes every joint mode gets about equal numbers of held-out subjects,
# which is what bounds the real floor of modes covered.
FACTORS: tuple[Factor, ...] = (
    Factor("head", ("small", "large"), (0.5, 0.5)),
    Factor("ventricles", ("normal", "enlarged", "much enlarged"), (1 / 3, 1 / 3, 1 / 3)),
    Factor("lesion", ("none", "white-matter lesion", "tumour"), (1 / 3, 1 / 3, 1 / 3)),
)
LEVEL = "level"
LEVEL_BINS = 6  # 2D: a subject's slices, vertex to cerebellum, in this many equal bins
NOT_SHOWN = "not shown"  # 2D ventricles of a slice that does not cut them

HEAD_SCALE = (0.88, 1.0)  # small, large: isotropic, about the brain's centre
# Peak magnification - 1 at the ventricles' centre, falling off as a Gaussian (VENTRICLE_SIGMA_MM)
VENTRICLE_GROWTH = (0.0, 0.6, 1.2)
VENTRICLE_CENTRE_MNI = (0.0, -14.0, 18.0)  # mm, between the lateral ventricles
VENTRICLE_SIGMA_MM = (18.0, 30.0, 22.0)  # along the working axes: S-I, A-P, L-R
# The lateral ventricles' region: CSF inside this ellipsoid (semi-axes along the working axes)
VENTRICLE_REGION_MM = (20.0, 50.0, 32.0)
# A slice shows the ventricles where their cross-section is at least this share of its largest.
SHOWN_SHARE = 0.3


@dataclass(frozen=True)
class Lesion:
    centre_mni: tuple[float, float, float]  # mm
    radius_mm: float
    t1_ms: float  # 1.5 T relaxation times and proton density of the lesion's tissue
    t2_ms: float
    pd: float


LESIONS = {
    # Sizes and T1 chosen so that a lesion shows in T1w (the generated contrast) at 32^3, where a
    # voxel is about 7 mm: 28 and 36 mm across, 30% and 36% darker than white matter.
    # MS-like white-matter lesion: T1 and T2 prolonged against white matter.
    "white-matter lesion": Lesion((-26.0, 18.0, 22.0), 14.0, t1_ms=1000.0, t2_ms=130.0, pd=0.8),
    # Glioma-like tumour: larger, T1 and T2 both long (dark in T1w, bright in T2w).
    "tumour": Lesion((32.0, -48.0, 28.0), 18.0, t1_ms=1400.0, t2_ms=180.0, pd=0.9),
}
LESION_EDGE_MM = 2.0  # width of the soft edge of a lesion's sphere


def columns(dims: int, labelled: bool) -> tuple[str, ...]:
    """The mode label columns of a task's images: the 2D level wherever slices are cut from
    volumes, the factors where the source records them (the phantom)."""
    factors = tuple(f.name for f in FACTORS) if labelled else ()
    return ((LEVEL,) if dims == 2 else ()) + factors


def classes(column: str, dims: int) -> tuple[str, ...]:
    """The values a column takes (label v is classes[v])."""
    if column == LEVEL:
        return tuple(f"level {b + 1} of {LEVEL_BINS}" for b in range(LEVEL_BINS))
    factor = next(f for f in FACTORS if f.name == column)
    return factor.levels + ((NOT_SHOWN,) if dims == 2 and column == "ventricles" else ())


def draw(rng: np.random.Generator) -> dict[str, int]:
    """One subject's factor levels, each factor drawn independently."""
    return {f.name: int(rng.choice(len(f.levels), p=f.frequencies)) for f in FACTORS}


def level_bins(count: int) -> torch.Tensor:
    """The bin of each of a subject's `count` slices, taken in order from the vertex down."""
    return torch.arange(count) * LEVEL_BINS // max(count, 1)


def _voxel(mni: tuple[float, float, float], affine: np.ndarray) -> torch.Tensor:
    """MNI mm -> working-cube voxel coordinates along axes 0, 1, 2."""
    return torch.tensor(np.linalg.solve(affine, np.array([*mni, 1.0]))[:3], dtype=torch.float32)


def _voxels(side: int) -> torch.Tensor:
    """Voxel indices of a side^3 cube, [S, S, S, 3] along axes 0, 1, 2."""
    lin = torch.arange(side, dtype=torch.float32)
    return torch.stack(torch.meshgrid(lin, lin, lin, indexing="ij"), dim=-1)


def factor_grid(side: int, affine: np.ndarray, spacing_mm: float, head: int,
                ventricles: int) -> torch.Tensor:
    """grid_sample's grid [1, S, S, S, 3] that scales the head and grows the ventricles: where
    output voxel u takes its value from. Growth is a Gaussian-weighted magnification about the
    ventricles' centre, r_src = r / (1 + a g(r)), monotone in r for any a >= 0, so it never folds."""
    def normalised(voxel: torch.Tensor) -> torch.Tensor:  # -1 and 1 at the cube's faces
        return (2 * voxel + 1) / side - 1

    u = normalised(_voxels(side)) / HEAD_SCALE[head]  # output = template magnified by the scale
    growth = VENTRICLE_GROWTH[ventricles]
    if growth:
        centre = normalised(_voxel(VENTRICLE_CENTRE_MNI, affine))
        sigma = torch.tensor(VENTRICLE_SIGMA_MM) / (spacing_mm * side / 2)
        d = u - centre
        g = torch.exp(-0.5 * ((d / sigma) ** 2).sum(-1, keepdim=True))
        u = centre + d / (1 + growth * g)
    return u.flip(-1)[None]  # grid_sample's (x, y, z) are array axes (2, 1, 0)


def lesion_map(side: int, affine: np.ndarray, spacing_mm: float, kind: str) -> torch.Tensor:
    """The lesion's soft sphere on the undeformed working cube, [S, S, S] in [0, 1]."""
    lesion = LESIONS[kind]
    dist_mm = (_voxels(side) - _voxel(lesion.centre_mni, affine)).norm(dim=-1) * spacing_mm
    # An edge at least a voxel wide: a sharper one would alias on small cubes.
    return torch.sigmoid((lesion.radius_mm - dist_mm) / (max(LESION_EDGE_MM, spacing_mm) / 4))


def ventricle_region(side: int, affine: np.ndarray, spacing_mm: float,
                     csf: torch.Tensor) -> torch.Tensor:
    """The lateral ventricles on the undeformed working cube: CSF inside an ellipsoid about
    their centre, as a CSF fraction [S, S, S] (partial volume kept, so small cubes still see
    them)."""
    axes = torch.tensor(VENTRICLE_REGION_MM) / spacing_mm
    inside = (((_voxels(side) - _voxel(VENTRICLE_CENTRE_MNI, affine)) / axes) ** 2).sum(-1) <= 1
    return csf * inside


def shown(region: torch.Tensor, levels: list[int], axis: int) -> torch.Tensor:
    """Per chosen slice, whether it cuts the structure `region` ([S, S, S] fractions) well: its
    cross-section at least SHOWN_SHARE of the largest."""
    other = tuple(d for d in range(3) if d != axis)
    area = region.sum(dim=other)
    if not float(area.max()) > 0:
        return torch.zeros(len(levels), dtype=torch.bool)
    return area[levels] >= SHOWN_SHARE * area.max()


def slice_labels(factors: dict[str, int], levels: list[int], axis: int,
                 ventricles: torch.Tensor, lesion: torch.Tensor) -> torch.Tensor:
    """int64 [len(levels), 4]: level bin, head, ventricles (or NOT_SHOWN), lesion (or none) of
    each slice of one subject; `ventricles` and `lesion` are the subject's deformed regions."""
    n = len(levels)
    out = torch.empty(n, 4, dtype=torch.int64)
    out[:, 0] = level_bins(n)
    out[:, 1] = factors["head"]
    not_shown = len(FACTORS[1].levels)
    out[:, 2] = torch.where(shown(ventricles, levels, axis), factors["ventricles"], not_shown)
    out[:, 3] = torch.where(shown(lesion, levels, axis), factors["lesion"], 0)
    return out


def volume_labels(factors: dict[str, int]) -> torch.Tensor:
    """int64 [1, 3]: head, ventricles, lesion of one volume."""
    return torch.tensor([[factors[f.name] for f in FACTORS]], dtype=torch.int64)


def joint(labels: torch.Tensor) -> list[tuple[int, ...]]:
    """Each image's joint mode: its row of labels as a tuple."""
    return [tuple(int(v) for v in row) for row in labels]


def describe(mode: tuple[int, ...], cols: tuple[str, ...], dims: int) -> str:
    return ", ".join(f"{c} {classes(c, dims)[v]}" if c != LEVEL else classes(c, dims)[v]
                     for c, v in zip(cols, mode))

