"""Floating-point operations of the GAN's training and evaluations, counted, never estimated by
hand (bench/flops.py; the pretexts' own counts are bench/pretext.py's).

Each step kind (a GAN step, the extra of a lazy-R1 step) is counted once per network shape,
running the very loss functions the loop trains with on meta tensors, and then weighted by how
often it runs.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import torch

from bench.flops import META, count_flops, forward_flops, meta_batch
from bench.nets import build_networks
from bench.profiles import Settings
from bench.train import d_loss, d_score, g_loss, r1_loss


def _gradient_by_backward(D: torch.nn.Module, x: torch.Tensor, s: Settings) -> torch.Tensor:
    # The same operations as train.input_gradient, whose autograd.grad FlopCounterMode's module
    # tracker cannot follow (torch 2.13: "A leaf node was passed to _will_engine_execute_node").
    with warnings.catch_warnings():  # the reference cycle it warns of is broken right below
        warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
        d_score(D, x, s).backward(create_graph=True, inputs=[x])
    grad, x.grad = x.grad, None
    return grad


@lru_cache(maxsize=None)
def gan_step_flops(s: Settings) -> dict[str, int]:
    """{"step": a plain D + G step, "r1": what a lazy-R1 step adds} for one batch."""
    with META, torch.random.fork_rng():  # build_networks seeds the global generator
        G, D = build_networks(s, 0)
    z = torch.zeros(s.batch_size, s.z_dim, device=META)
    real = meta_batch(s.batch_size, s.dims, s.image_size)

    def step() -> None:
        d_loss(G, D, z, real, META, "fp32").backward()
        D.requires_grad_(False)
        g_loss(G, D, z, META, "fp32").backward()
        D.requires_grad_(True)

    r1 = count_flops(lambda: r1_loss(D, real, s, _gradient_by_backward).backward())
    return {"step": count_flops(step), "r1": r1 if s.r1_gamma > 0 else 0}


def gan_flops(s: Settings, steps: int) -> int:
    """FLOPs of `steps` training steps; R1 runs at steps 0, r1_every, 2 r1_every, ..."""
    per = gan_step_flops(s)
    return steps * per["step"] + math.ceil(steps / s.r1_every) * per["r1"]


def steps_for(s: Settings, flops: float) -> int:
    """The fewest training steps whose FLOPs reach `flops`."""
    per = gan_step_flops(s)
    steps = max(0, math.floor(flops / (per["step"] + per["r1"] / s.r1_every)) - s.r1_every)
    while gan_flops(s, steps) < flops:
        steps += 1
    return steps


def evaluation_flops(G: torch.nn.Module, s: Settings, evaluator, evaluations: int) -> int:
    """What the evaluations cost, kept apart from training: generating the evaluation samples
    and the domain encoder's features of them (one row per image in 2D, per slice in 3D). The
    Inception network of the final evaluation is not counted."""
    per_image = (forward_flops(G, (1, s.z_dim))
                 + evaluator.ref.rows_per_image
                 * forward_flops(evaluator.domain.encoder, (1, 1, s.image_size, s.image_size)))
    return evaluations * evaluator.n * per_image
