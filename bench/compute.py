"""Floating-point operations of the training loops, counted, never estimated by hand.

Each step kind (a GAN step, the extra of a lazy-R1 step, a CycleGAN step, an autoencoder step)
is counted once per network shape with torch's FlopCounterMode, running the very loss functions
the loops train with on meta tensors (shapes only: no memory, no arithmetic), and then weighted
by how often it runs. Matmuls and convolutions, forward and backward, are counted; elementwise
work (activations, norms, Adam's update) is not, as in every FLOP count of this kind.
"""

from __future__ import annotations

import math
import warnings
from copy import deepcopy
from functools import lru_cache

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.profiles import Settings
from bench.train import d_score

META = torch.device("meta")


def count_flops(fn) -> int:
    """FLOPs of running `fn()` (forward and backward, whatever it does)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _gradient_by_backward(D: torch.nn.Module, x: torch.Tensor, s: Settings) -> torch.Tensor:
    # The same operations as train.input_gradient, whose autograd.grad FlopCounterMode's module
    # tracker cannot follow (torch 2.13: "A leaf node was passed to _will_engine_execute_node").
    with warnings.catch_warnings():  # the reference cycle it warns of is broken right below
        warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
        d_score(D, x, s).backward(create_graph=True, inputs=[x])
    grad, x.grad = x.grad, None
    return grad


def _batch(s: Settings, n: int) -> torch.Tensor:
    return torch.zeros((n, 1) + (s.image_size,) * s.dims, device=META)


@lru_cache(maxsize=None)
def gan_step_flops(s: Settings) -> dict[str, int]:
    """{"step": a plain D + G step, "r1": what a lazy-R1 step adds} for one batch."""
    from bench.nets import build_networks
    from bench.train import d_loss, g_loss, r1_loss
    with META, torch.random.fork_rng():  # build_networks seeds the global generator
        G, D = build_networks(s, 0)
    z = torch.zeros(s.batch_size, s.z_dim, device=META)
    real = _batch(s, s.batch_size)

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


@lru_cache(maxsize=None)
def pretext_step_flops(name: str, s: Settings) -> int:
    """One training step of pretext `name` on the task settings `s` (a 2D pretext of a 3D task
    counts its own 2D step)."""
    from bench.pretext import _trunk, autoencoder_loss, cyclegan_d_loss, cyclegan_g_loss, cyclegan_nets, get_pretext_kind
    kind = get_pretext_kind(name)
    s = kind.settings(s)
    t1, t2 = _batch(s, s.pretext_batch), _batch(s, s.pretext_batch)
    if kind.loss == "cyclegan":
        with META:
            nets = cyclegan_nets(s, META)

        def step() -> None:
            loss_g, fake_t1, fake_t2 = cyclegan_g_loss(nets, t1, t2, s, META, "fp32")
            loss_g.backward()
            cyclegan_d_loss(nets, t1, t2, fake_t1.detach(), fake_t2.detach(), META, "fp32").backward()
        return count_flops(step)
    with META:
        trunk = _trunk(s, META)
    return count_flops(lambda: autoencoder_loss(trunk, t1, t2, META, "fp32").backward())


def pretext_steps(name: str, s: Settings) -> int:
    """The autoencoder trains for the fewest steps whose FLOPs reach the CycleGAN's: a control
    for "any pretraining" at the adversarial translation's cost. The others train the profile's
    `pretext_steps`."""
    if name == "autoencoder":
        return math.ceil(pretext_flops("cyclegan", s) / pretext_step_flops("autoencoder", s))
    return s.pretext_steps


def pretext_flops(name: str, s: Settings) -> int:
    return pretext_steps(name, s) * pretext_step_flops(name, s)


def forward_flops(net: torch.nn.Module, shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass of a copy of `net` on an input of `shape` (no grad)."""
    copy = deepcopy(net).to(META)
    with torch.no_grad():
        return count_flops(lambda: copy(torch.zeros(shape, device=META)))


def evaluation_flops(G: torch.nn.Module, s: Settings, evaluator, evaluations: int) -> int:
    """What the evaluations cost, kept apart from training: generating the evaluation samples
    and the domain encoder's features of them (one row per image in 2D, per slice in 3D). The
    Inception network of the final evaluation is not counted."""
    per_image = (forward_flops(G, (1, s.z_dim))
                 + evaluator.ref.rows_per_image
                 * forward_flops(evaluator.domain.encoder, (1, 1, s.image_size, s.image_size)))
    return evaluations * evaluator.n * per_image
