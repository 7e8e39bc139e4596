"""Graded degradations of real images, and fakes a metric must tell from anatomy: the inputs of
the metric validation suite (bench.metrics.validate). The same code serves 2D and 3D.

Every function takes images [N, 1, *spatial] in [-1, 1] (background exactly -1) and returns a
set of the same shape; randomness comes only from the generator passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from monai.networks.layers import GaussianFilter

BACKGROUND = -1.0
BRAIN_EPS = 1e-3  # above the background by more than this: brain (the data's background is exact)
DUPLICATED_IMAGES = 4  # a collapsed generator repeating "a few" images
UPSAMPLING_PERIOD = 2  # the trunk's transposed convolutions have stride 2


@dataclass(frozen=True)
class Pool:
    """What a degradation may draw from: the real images being degraded, a scalar per image that
    orders its modes (see `mode_coordinate`), and the training images (memorization)."""

    images: torch.Tensor
    modes: torch.Tensor
    train: torch.Tensor


Apply = Callable[[Pool, int, float, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class Degradation:
    name: str
    label: str
    levels: tuple[float, ...]  # strengths 1..K; strength 0 is the undegraded set
    apply: Apply  # (pool, set size, strength, generator) -> images
    unit: str = ""


def _pick(n_from: int, n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randperm(n_from, generator=gen)[:n]


def undegraded(pool: Pool, n: int, gen: torch.Generator) -> torch.Tensor:
    return pool.images[_pick(len(pool.images), n, gen)]


def blur(pool: Pool, n: int, sigma: float, gen: torch.Generator) -> torch.Tensor:
    x = undegraded(pool, n, gen)
    return GaussianFilter(x.ndim - 2, sigma)(x)


def noise(pool: Pool, n: int, sigma: float, gen: torch.Generator) -> torch.Tensor:
    x = undegraded(pool, n, gen)
    return (x + sigma * torch.randn(x.shape, generator=gen)).clamp(-1, 1)


def gamma(pool: Pool, n: int, g: float, gen: torch.Generator) -> torch.Tensor:
    """Tissue contrast changed by a gamma curve on [0, 1]; the background stays -1."""
    x = undegraded(pool, n, gen)
    return ((x + 1) / 2).clamp(0, 1) ** g * 2 - 1


def shift(pool: Pool, n: int, voxels: float, gen: torch.Generator) -> torch.Tensor:
    """Each image moved by `voxels` along one random axis and direction, padded with background:
    real anatomy, off the position every real image has."""
    x = undegraded(pool, n, gen)
    out = torch.full_like(x, BACKGROUND)
    k, d = int(voxels), x.ndim - 2
    axes = torch.randint(d, (n,), generator=gen) + 2
    signs = torch.randint(2, (n,), generator=gen) * 2 - 1
    for i in range(n):
        axis, sign = int(axes[i]), int(signs[i])
        src = x[i].narrow(axis - 1, 0 if sign > 0 else k, x.shape[axis] - k)
        out[i].narrow(axis - 1, k if sign > 0 else 0, x.shape[axis] - k).copy_(src)
    return out


def drop_modes(pool: Pool, n: int, fraction: float, gen: torch.Generator) -> torch.Tensor:
    """The images whose mode coordinate lies in the top `fraction` are never drawn: a generator
    that lost one brain level (2D) or one kind of subject (3D). Sets stay distinct real images,
    so `n` must leave room for the largest fraction (see `Degradation` sizes in validate)."""
    order = torch.argsort(pool.modes, stable=True)
    kept = order[: len(order) - int(round(fraction * len(order)))]
    return pool.images[kept[_pick(len(kept), n, gen)]]


def duplicate(pool: Pool, n: int, fraction: float, gen: torch.Generator) -> torch.Tensor:
    """A share of the set replaced by copies of a few of its images (a collapsing generator)."""
    x = undegraded(pool, n, gen).clone()
    copies = int(round(fraction * n))
    sources = x[:DUPLICATED_IMAGES]
    x[n - copies:] = sources[torch.arange(copies) % DUPLICATED_IMAGES]
    return x


def memorize(pool: Pool, n: int, fraction: float, gen: torch.Generator) -> torch.Tensor:
    """A share of the set replaced by training images (a generator that copies)."""
    x = undegraded(pool, n, gen).clone()
    copies = int(round(fraction * n))
    if copies:
        # Distinct training images where there are enough (there always are outside tests).
        idx = (_pick(len(pool.train), copies, gen) if copies <= len(pool.train)
               else torch.randint(len(pool.train), (copies,), generator=gen))
        x[n - copies:] = pool.train[idx]
    return x


def brain_mask(x: torch.Tensor) -> torch.Tensor:
    return x > BACKGROUND + BRAIN_EPS


def voxel_shuffle(pool: Pool, n: int, gen: torch.Generator) -> torch.Tensor:
    """Real intensities and brain outline, no anatomy: each image's brain voxels permuted."""
    x = undegraded(pool, n, gen).clone()
    for image in x:
        inside = brain_mask(image)
        values = image[inside]
        image[inside] = values[torch.randperm(len(values), generator=gen)]
    return x


def checkerboard(pool: Pool, n: int, gen: torch.Generator) -> torch.Tensor:
    """The brain outline filled with a checkerboard at the generator's upsampling period, around
    each image's own mean brain intensity with its own spread: the artefact of an untrained
    transposed-convolution decoder, in a brain-shaped mask."""
    x = undegraded(pool, n, gen).clone()
    grids = torch.meshgrid(*[torch.arange(s) for s in x.shape[2:]], indexing="ij")
    sign = (sum(g // (UPSAMPLING_PERIOD // 2) for g in grids) % 2) * 2 - 1
    for image in x:
        inside = brain_mask(image)
        values = image[inside]
        board = (values.mean() + values.std() * sign).clamp(-1, 1)
        image[inside] = board.expand_as(image)[inside]
    return x


def filled(pool: Pool, n: int, gen: torch.Generator) -> torch.Tensor:
    """Real outlines filled without inner anatomy: each brain smoothed inside its own mask
    (normalized convolution, sigma an eighth of the side), so the outline and the mean tissue
    level stay while ventricles, grey/white contrast and lesions are gone: what a generator that
    learned only outlines draws (smooth blobs)."""
    x = undegraded(pool, n, gen).clone()
    inside = brain_mask(x).to(x.dtype)
    smooth = GaussianFilter(x.ndim - 2, x.shape[-1] / 8)
    # Averages of brain voxels only: the background's -1 never bleeds into the rim.
    fill = smooth(x * inside) / smooth(inside).clamp_min(1e-6)
    return torch.where(inside.bool(), fill.clamp(-1, 1), x)


def dark_box(pool: Pool, n: int, share: float, gen: torch.Generator) -> torch.Tensor:
    """A share of the set with one dark box (a quarter of the side, at the background level)
    inside the brain: the artefact a cutout-augmented generator can learn to draw."""
    x = undegraded(pool, n, gen).clone()
    side = max(1, x.shape[-1] // 4)
    for image in x[: int(round(share * n))]:
        inside = brain_mask(image[0]).nonzero()
        if not len(inside):
            continue
        centre = inside[int(torch.randint(len(inside), (1,), generator=gen))]
        box = tuple(slice(max(0, int(c) - side // 2), int(c) - side // 2 + side) for c in centre)
        image[(0, *box)] = BACKGROUND
    return x


def distort(pool: Pool, n: int, voxels: float, gen: torch.Generator) -> torch.Tensor:
    """Each image under a smooth random warp moving points by up to `voxels`: real texture, a
    distorted outline and layout. By hand (a coarse random field upsampled, one grid_sample for
    the set) because TorchIO's elastic deformation resamples image by image, far slower here."""
    x = undegraded(pool, n, gen)
    d = x.ndim - 2
    coarse = torch.rand((n, d, *([4] * d)), generator=gen) * 2 - 1
    mode = "bilinear" if d == 2 else "trilinear"
    field = F.interpolate(coarse, size=x.shape[2:], mode=mode, align_corners=True)
    field = field / field.flatten(2).abs().amax(-1).clamp_min(1e-6).view(n, d, *[1] * d)
    lin = [torch.linspace(-1, 1, s) for s in x.shape[2:]]
    base = torch.stack(torch.meshgrid(*lin, indexing="ij"), dim=0)  # axes 0.., as normalised
    shift = field * (2 * voxels / torch.tensor(x.shape[2:]).view(1, d, *[1] * d))
    grid = (base + shift).movedim(1, -1).flip(-1)  # grid_sample's (x, y[, z]) order
    return F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=True) - 1


def texture(pool: Pool, n: int, share: float, gen: torch.Generator) -> torch.Tensor:
    """A share of each image's brain voxels swapped among themselves: the outline and the
    intensities stay, the anatomy turns to texture (all of it: the voxel-shuffle fake)."""
    x = undegraded(pool, n, gen).clone()
    for image in x:
        inside = brain_mask(image).nonzero(as_tuple=True)
        count = int(round(share * len(inside[0])))
        if count < 2:
            continue
        chosen = torch.randperm(len(inside[0]), generator=gen)[:count]
        where = tuple(i[chosen] for i in inside)
        image[where] = image[where][torch.randperm(count, generator=gen)]
    return x


def mode_coordinate(images: torch.Tensor, subjects: torch.Tensor,
                    labels: torch.Tensor | None = None) -> torch.Tensor:
    """A scalar per image along which its modes lie, so dropping the top share drops whole modes.
    With known modes (`labels`, datasets/factors.py): the joint mode's rank, its first column
    most significant: in 2D the level bin (dropping the top share drops the lowest levels), in
    3D the head size, then the ventricles, then the lesion. Without: in 2D the slice's level
    within its subject (slices are stored from the vertex down); in 3D the volume's position on
    the first principal component of the set (at half resolution), the largest way in which
    subjects differ."""
    if labels is not None:
        rank = torch.zeros(len(labels), dtype=torch.float64)
        for column in labels.T:  # lexicographic: earlier columns weigh more
            rank = rank * (int(column.max()) + 1) + column.double()
        return rank.float()
    if images.ndim == 4:
        level = torch.zeros(len(images))
        for s in subjects.unique():
            idx = (subjects == s).nonzero().flatten()
            level[idx] = torch.arange(len(idx), dtype=torch.float32) / max(1, len(idx) - 1)
        return level
    x = torch.nn.functional.avg_pool3d(images, 2).flatten(1).double()
    x = x - x.mean(0)
    _, _, v = torch.linalg.svd(x, full_matrices=False)
    return (x @ v[0]).float()


# Strengths chosen so the weakest is subtle (about the phantom's own noise and jitter) and the
# strongest obvious by eye; shift and blur scale with the image side (given for 64 pixels).
def degradations(image_size: int) -> tuple[Degradation, ...]:
    scale = image_size / 64
    return (
        Degradation("blur", "Gaussian blur", tuple(round(s * scale, 3) for s in (0.5, 1, 1.5, 2)),
                    blur, "sigma (voxels)"),
        Degradation("noise", "additive Gaussian noise", (0.05, 0.1, 0.2, 0.4), noise,
                    "sigma (of the [-1, 1] range)"),
        Degradation("contrast", "contrast change (gamma)", (1.25, 1.5, 2.0, 3.0), gamma, "gamma"),
        Degradation("shift", "spatial shift", tuple(max(1, round(v * scale)) for v in (2, 4, 6, 8)),
                    shift, "voxels"),
        Degradation("dropped_modes", "dropped modes", (0.1, 0.2, 0.35, 0.5), drop_modes,
                    "share of modes never drawn"),
        Degradation("duplicated", "duplicated samples", (0.25, 0.5, 0.75, 0.9), duplicate,
                    f"share replaced by copies of {DUPLICATED_IMAGES} images"),
        Degradation("memorized", "training images instead of held-out", (0.25, 0.5, 0.75, 1.0),
                    memorize, "share replaced by training images"),
        # What the published samples got wrong (docs/evaluation.md): no metric must order these;
        # the table shows which do, to settle which distance to believe where two disagree.
        Degradation("dark_box", "a dark box inside the brain", (0.25, 0.5, 0.75, 1.0),
                    dark_box, "share of images with one"),
        Degradation("distorted", "distorted outline (smooth random warp)",
                    tuple(round(v * scale, 3) for v in (2, 4, 6, 8)), distort,
                    "largest displacement (voxels)"),
        Degradation("texture", "texture without anatomy", (0.25, 0.5, 0.75, 1.0), texture,
                    "share of brain voxels shuffled"),
    )


# The mild set: degradations after which a radiologist still reads the same anatomy, up to the
# strongest strength given here (at 64 pixels; spatial strengths scale with the side, as the
# levels do). Why each belongs is in docs/evaluation.md ("Anatomy before grain").
MILD = {"blur": 1.0, "noise": 0.2, "contrast": 1.25, "shift": 4, "distorted": 4}
# The sets without any anatomy: (check, level). Texture at its full strength shuffles every brain
# voxel, as the voxel-shuffle fake does, drawn from its own images.
WITHOUT_ANATOMY = (("shuffled", 1), ("checkerboard", 1), ("filled", 1), ("untrained", 1),
                   ("texture", 4))


def mild_levels() -> dict[str, list[int]]:
    """The mild set as (degradation, levels 1..K) whose strength at 64 pixels is within MILD."""
    out = {}
    for kind in degradations(64):
        if kind.name in MILD:
            out[kind.name] = [level for level, strength in enumerate(kind.levels, start=1)
                              if strength <= MILD[kind.name] + 1e-9]
    return out
