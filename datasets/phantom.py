"""The `mni-phantom` source: paired T1w/T2w subjects rendered from real MNI152 anatomy.

Each subject draws its known modes (datasets/factors.py: head size, ventricle size, a lesion),
which change the MNI tissue maps; then the maps get the subject's own random affine + elastic
deformation (applied once to the stacked maps, so T1w and T2w stay voxel-for-voxel paired), are
rendered per contrast with the spin-echo signal equation from jittered BrainWeb 1.5 T tissue
values, and get their own bias field and Rician noise. Everything is a pure function of
(subject index, data seed, size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
import torchio as tio

from datasets import factors
from datasets.anatomy import working_grid

# Bump whenever a change alters generated voxels: it is part of every cache key.
GENERATOR_VERSION = 2

LABELS = ("background", "csf", "gm", "wm", "lesion")  # values of Subject.labels


@dataclass(frozen=True)
class Tissue:
    t1_ms: float
    t2_ms: float
    pd: float


@dataclass(frozen=True)
class Sequence:
    tr_ms: float
    te_ms: float


# BrainWeb tissue parameters at 1.5 T.
BRAINWEB_1P5T: dict[str, Tissue] = {
    "csf": Tissue(t1_ms=2569.0, t2_ms=329.0, pd=1.0),
    "gm": Tissue(t1_ms=833.0, t2_ms=83.0, pd=0.86),
    "wm": Tissue(t1_ms=500.0, t2_ms=70.0, pd=0.77),
}
SEQUENCES: dict[str, Sequence] = {
    "t1": Sequence(tr_ms=500.0, te_ms=15.0),
    "t2": Sequence(tr_ms=4000.0, te_ms=100.0),
}

TISSUE_JITTER = 0.04  # relative, uniform, per subject and tissue property
SEQUENCE_JITTER = 0.05  # relative, uniform, per subject and contrast
NOISE_RANGE = (0.01, 0.03)  # Rician sigma as a fraction of the bright end of the brain signal
BIAS_COEFFICIENTS = 0.3  # TorchIO polynomial bias-field coefficient range
# Scales within 3%: the two head sizes (factors.HEAD_SCALE, 12% apart) never overlap.
AFFINE = {"scales": 0.03, "degrees": 6.0, "translation": 3.0}  # translation in mm
ELASTIC = {"num_control_points": 7, "max_displacement": 5.0}  # mm
NORM_PERCENTILE = 99.5
WARP_GRID = 20  # side of the coarse grid the random warp is evaluated on
WARP_OVERHANG = 0.125  # fraction of the cube side the warp grid extends past each face
BIAS_GRID = 16  # side of the grid the bias field is evaluated on before upsampling


@dataclass(frozen=True)
class Subject:
    """One rendered subject on the side^3 working cube (orientation: see anatomy.py)."""

    t1: torch.Tensor  # float32 [S, S, S] in [-1, 1], background exactly -1
    t2: torch.Tensor  # float32 [S, S, S], voxel-for-voxel paired with t1
    labels: torch.Tensor  # int64 [S, S, S], index into LABELS (argmax of the deformed maps)
    factors: dict[str, int]  # the subject's level of each of factors.FACTORS
    ventricles: torch.Tensor  # float32 [S, S, S]: the lateral ventricles' CSF, deformed
    lesion: torch.Tensor  # float32 [S, S, S]: the lesion's share of each voxel (0 without one)

    @property
    def brain(self) -> torch.Tensor:
        return self.labels > 0


def spin_echo(probs: torch.Tensor, tissues: dict[str, Tissue], seq: Sequence) -> torch.Tensor:
    """S = sum_t p_t * PD_t * (1 - exp(-TR/T1_t)) * exp(-TE/T2_t); probs is [T, ...], one map per
    tissue of `tissues` in its order (CSF, GM, WM, and a lesion where there is one)."""
    signal = torch.zeros_like(probs[0])
    for p, t in zip(probs, tissues.values()):
        weight = t.pd * (1 - math.exp(-seq.tr_ms / t.t1_ms)) * math.exp(-seq.te_ms / t.t2_ms)
        signal += weight * p
    return signal


def _jitter(rng: np.random.Generator, value: float, rel: float) -> float:
    return float(value * (1 + rng.uniform(-rel, rel)))


def _random_warp(maps: torch.Tensor, spacing_mm: float) -> torch.Tensor:
    """The maps under one TorchIO random affine + elastic deformation, shared by all channels.

    TorchIO (SimpleITK) resamples channel by channel and evaluates the B-spline at every voxel,
    which dominated the cost. The warp is smooth (affine plus a 7-control-point spline), so
    TorchIO deforms a coarse grid of coordinates instead: the resampled coordinates are the warp
    itself (linear interpolation reproduces a linear ramp exactly). That warp is upsampled and
    applied to the stacked maps in one grid_sample.
    """
    side = maps.shape[-1]
    # The coarse grid overhangs the cube, so a cube voxel whose source lies past the cube's edge
    # still gets a valid coordinate instead of one blended with TorchIO's padding.
    over = max(2, math.ceil(side * WARP_OVERHANG))
    ext, n = side + 2 * over, WARP_GRID
    # Coarse voxel centres in grid_sample's normalised units of the cube (its edges are -1, 1).
    lin = ((2 * torch.arange(n) + 1) / n * ext - 2 * over) / side - 1
    a0, a1, a2 = torch.meshgrid(lin, lin, lin, indexing="ij")
    coords = torch.stack([a2, a1, a0])  # grid_sample's (x, y, z) are array axes (2, 1, 0)
    deform = tio.RandomAffineElasticDeformation(
        # sources past even the overhang land far outside the cube: background
        affine_kwargs={**AFFINE, "default_pad_value": 100.0},
        elastic_kwargs=ELASTIC,
    )
    coarse_affine = np.diag([ext * spacing_mm / n] * 3 + [1.0])
    warp = deform(tio.ScalarImage(tensor=coords, affine=coarse_affine)).data.float()
    warp = F.interpolate(warp[None], size=(ext,) * 3, mode="trilinear", align_corners=False)[0]
    where = warp[:, over:over + side, over:over + side, over:over + side].permute(1, 2, 3, 0)
    return F.grid_sample(maps[None], where[None], mode="bilinear", padding_mode="zeros",
                         align_corners=False)[0]


def _bias_field(side: int, affine: np.ndarray) -> torch.Tensor:
    """A TorchIO random bias field on a side^3 grid.

    The field is exp(cubic polynomial), smooth by construction, so TorchIO evaluates it on a coarse
    grid and it is upsampled: at 256^3 the full evaluation would cost seconds per image.
    TorchIO's polynomial coordinates span [-1, 1] between the first and last voxel centres at
    any grid size, which is exactly align_corners=True.
    """
    coarse = min(side, BIAS_GRID)
    ones = tio.ScalarImage(tensor=torch.ones(1, coarse, coarse, coarse), affine=affine)
    field = tio.RandomBiasField(coefficients=BIAS_COEFFICIENTS)(ones).data.float()
    if coarse == side:
        return field[0]
    return F.interpolate(field[None], size=(side,) * 3, mode="trilinear", align_corners=True)[0, 0]


def _normalise(signal: torch.Tensor, brain: torch.Tensor) -> torch.Tensor:
    # Scale-only (zero signal stays -1): mapping a low percentile to -1 as well would make dark
    # CSF in T1w indistinguishable from the background. The high percentile ignores hot noise.
    hi = float(np.percentile(signal[brain].numpy(), NORM_PERCENTILE))
    out = (2.0 * signal / max(hi, 1e-6) - 1.0).clamp_(-1.0, 1.0)
    return out.masked_fill_(~brain, -1.0)


def render_subject(index: int, data_seed: int, size: int) -> Subject:
    """Subject `index` of data seed `data_seed` on a size^3 cube: paired T1w/T2w volumes and the
    deformed tissue labels. A pure function of its arguments."""
    rng = np.random.default_rng(np.random.SeedSequence([data_seed, index]))
    torch_seed = int(rng.integers(2**62))
    modes = factors.draw(rng)
    grid = working_grid(size)
    # TorchIO's RandomAffine etc. take their spacing from the affine: keep mm meaningful at any size.
    affine = np.diag([grid.spacing_mm] * 3 + [1.0])

    tissues = {name: replace(t, t1_ms=_jitter(rng, t.t1_ms, TISSUE_JITTER),
                             t2_ms=_jitter(rng, t.t2_ms, TISSUE_JITTER),
                             pd=_jitter(rng, t.pd, TISSUE_JITTER))
               for name, t in BRAINWEB_1P5T.items()}
    maps = _with_factors(grid, size, modes, tissues, rng)

    # fork_rng: TorchIO draws from torch's global generator; never disturb the caller's stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch_seed)
        maps = _random_warp(maps, grid.spacing_mm)
        probs, ventricles = maps[:-1].clamp(0.0, 1.0), maps[-1].clamp(0.0, 1.0)
        background = (1.0 - probs.sum(0)).clamp(0.0, 1.0)
        # argmax over a last, contiguous axis is several times faster than over the first
        labels = torch.stack([background, *probs], dim=-1).argmax(-1)
        brain = labels > 0

        images = {}
        for name, base in SEQUENCES.items():
            seq_params = Sequence(tr_ms=_jitter(rng, base.tr_ms, SEQUENCE_JITTER),
                                  te_ms=_jitter(rng, base.te_ms, SEQUENCE_JITTER))
            signal = spin_echo(probs, tissues, seq_params)
            signal = signal * _bias_field(size, affine)
            sigma = rng.uniform(*NOISE_RANGE) * float(np.percentile(signal[brain].numpy(), 99))
            noise = torch.from_numpy(rng.standard_normal((2, *signal.shape), dtype=np.float32))
            # Rician: MR magnitude images are |signal + complex Gaussian noise|, which lifts dark
            # regions (CSF in T1w) above zero; TorchIO's RandomNoise only adds real Gaussian noise.
            signal = torch.hypot(signal + sigma * noise[0], sigma * noise[1])
            images[name] = _normalise(signal, brain)
    lesion = probs[3] if len(probs) > 3 else torch.zeros_like(probs[0])
    return Subject(t1=images["t1"], t2=images["t2"], labels=labels, factors=modes,
                   ventricles=ventricles, lesion=lesion)


def _with_factors(grid, size: int, modes: dict[str, int], tissues: dict[str, Tissue],
                  rng: np.random.Generator) -> torch.Tensor:
    """The working maps changed by the subject's factors: a lesion (its tissue added to
    `tissues`, its map after WM), the head scaled and the ventricles grown; the lateral
    ventricles' region rides along as the last channel. [T + 1, S, S, S]."""
    maps = grid.maps
    channels = [*maps]
    kind = factors.FACTORS[2].levels[modes["lesion"]]
    if kind in factors.LESIONS:
        lesion = factors.lesion_map(size, grid.affine, grid.spacing_mm, kind) * maps.sum(0)
        channels = [m * (1 - lesion) for m in channels] + [lesion]
        spec = factors.LESIONS[kind]
        tissues["lesion"] = Tissue(t1_ms=_jitter(rng, spec.t1_ms, TISSUE_JITTER),
                                   t2_ms=_jitter(rng, spec.t2_ms, TISSUE_JITTER),
                                   pd=_jitter(rng, spec.pd, TISSUE_JITTER))
    channels.append(factors.ventricle_region(size, grid.affine, grid.spacing_mm, maps[0]))
    where = factors.factor_grid(size, grid.affine, grid.spacing_mm, modes["head"],
                                modes["ventricles"])
    return F.grid_sample(torch.stack(channels)[None], where, mode="bilinear",
                         padding_mode="zeros", align_corners=False)[0]
