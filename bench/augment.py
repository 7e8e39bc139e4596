"""Differentiable augmentation of everything D sees, real and generated alike (DiffAugment, Zhao
et al. 2020), for 2D and 3D batches in [-1, 1].

Written here because no installed library has it: MONAI's and TorchIO's transforms work on one
sample at a time outside autograd, and D must see the same random transform distribution on
generated images, with G's gradient flowing through it. Vacated and erased voxels take -1, the
background of a skull-stripped MR image, so a translation or a cutout never paints a frame.

Each operation applies to a sample with probability `p` (ADA's p, Karras et al. 2020). At p = 1
every image D sees holds an erased box, so D cannot tell a box G drew from one the augmentation
erased, and G may draw them (a leak). Below 1 some of D's real images are never erased, and a
generator that draws boxes is told apart (docs/stabilized-recipe.md measures both).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ground.errors import BenchError

TRANSLATION = 1 / 8  # of the image size, in each direction (DiffAugment's ratio)
CUTOUT = 1 / 2       # side of the erased square or cube, relative to the image
BACKGROUND = -1.0
POLICIES = ("translation", "cutout")


def check_policy(policy: str) -> tuple[str, ...]:
    """The policy's operations in order ('none' or '' for none); a one-line error for others."""
    ops = tuple(op.strip() for op in policy.split(",") if op.strip() and op.strip() != "none")
    unknown = [op for op in ops if op not in POLICIES]
    if unknown:
        raise BenchError(f"unknown augmentation '{unknown[0]}'; use 'none' or a comma-separated "
                         f"list of: {', '.join(POLICIES)}")
    return ops


def translate(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    size = x.shape[2:]
    pads = [round(s * TRANSLATION) for s in size]
    padded = F.pad(x, [p for p in reversed(pads) for _ in (0, 1)], value=BACKGROUND)
    # One shift per sample and spatial dimension, up to the padding either way.
    starts = torch.stack([torch.randint(0, 2 * p + 1, (len(x),), generator=gen) for p in pads], 1)
    return torch.stack([padded[i][(slice(None),) + tuple(slice(o, o + s) for o, s in
                                                          zip(starts[i].tolist(), size))]
                        for i in range(len(x))])


def cutout(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n, size = len(x), x.shape[2:]
    # Drawn on the CPU generator, then built where x lives: only n x dims integers move.
    centres = torch.stack([torch.randint(0, s, (n,), generator=gen) for s in size], 1)
    centres = centres.to(x.device)
    erased = torch.ones(n, 1, *size, dtype=torch.bool, device=x.device)
    for d, s in enumerate(size):  # inside the box along every dimension
        view = [1, 1] + [1] * len(size)
        view[2 + d] = s
        coord = torch.arange(s, device=x.device).view(view)
        centre = centres[:, d].view([n] + [1] * (len(size) + 1))
        erased = erased & ((coord - centre).abs() < round(s * CUTOUT / 2))
    return torch.where(erased, BACKGROUND, x)


OPERATIONS = {"translation": translate, "cutout": cutout}


def check_probability(p: float) -> float:
    if not 0 < p <= 1:
        raise BenchError(f"augment_p {p:g} is not a probability in (0, 1]; set it between 0 "
                         "(exclusive) and 1 in the profile or the trial")
    return p


def augment(x: torch.Tensor, ops: tuple[str, ...], gen: torch.Generator, p: float = 1.0
            ) -> torch.Tensor:
    """x with every operation of `ops` applied to each sample with probability `p`, each
    sample drawn apart from `gen` (a CPU generator, so a unit's draws do not depend on the
    device). At p = 1 no draw decides whether to apply: the draws are those of an older run."""
    for op in ops:
        done = OPERATIONS[op](x, gen)
        if p < 1:
            applied = (torch.rand(len(x), generator=gen) < p).to(x.device)
            done = torch.where(applied.view(-1, *[1] * (x.dim() - 1)), done, x)
        x = done
    return x
