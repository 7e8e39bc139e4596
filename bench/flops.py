"""Counting floating-point operations on meta tensors (shapes only: no memory, no arithmetic).

torch's FlopCounterMode counts matmuls and convolutions, forward and backward; elementwise work
(activations, norms, Adam's update) is not counted, as in every FLOP count of this kind. The
training loops' step counts live with the loops: bench/compute.py (the GAN) and bench/pretext.py
(the pretexts, whose autoencoder budget is the CycleGAN's FLOPs).
"""

from __future__ import annotations

from copy import deepcopy

import torch
from torch.utils.flop_counter import FlopCounterMode

META = torch.device("meta")


def count_flops(fn) -> int:
    """FLOPs of running `fn()` (forward and backward, whatever it does)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def meta_batch(n: int, dims: int, size: int) -> torch.Tensor:
    """n one-channel images (dims 2) or volumes (dims 3) of side `size`, shapes only."""
    return torch.zeros((n, 1) + (size,) * dims, device=META)


def forward_flops(net: torch.nn.Module, shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass of a copy of `net` on an input of `shape` (no grad)."""
    copy = deepcopy(net).to(META)
    with torch.no_grad():
        return count_flops(lambda: copy(torch.zeros(shape, device=META)))
