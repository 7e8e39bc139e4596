"""Inflating a 2D trunk to 3D: each 2D kernel spread along the axial (depth) axis.

The depth taps are chosen so that the inflated trunk, applied to a volume that is constant along
depth, reproduces the 2D trunk on every slice, boundary slices included. That matters beyond the
boundaries: instance norm takes its statistics over the whole volume, so one boundary slice
that came out different would shift every slice. Per layer kind:

- reflect-padded convolutions: the kernel spread evenly, w/k per tap (as I3D inflates). Reflection
  of a depth-constant volume is depth-constant, so every slice sees the full sum.
- stride-2 convolutions with zero padding: taps (0, 1/2, 1/2): output slice o averages input
  slices 2o and 2o+1, and the zero-padded slice -1 never carries weight.
- stride-2 transposed convolutions (kernel 3, padding 1, output padding 1): taps (0, 1, 1):
  even output slices take tap 1 of one input slice, odd ones tap 2 of one (tap 0 of the next
  is zero), i.e. nearest-neighbour upsampling along depth. Linear interpolation, (1/2, 1, 1/2),
  also sums to one inside but gives the last slice only half of it.
"""

from __future__ import annotations

import torch
from torch import nn

from ground.errors import BenchError


def depth_taps(module: nn.Module) -> torch.Tensor:
    """The depth weights for one 3D convolution of the trunk (see the module's docstring)."""
    k, stride, pad = module.kernel_size[0], module.stride[0], module.padding[0]
    if isinstance(module, nn.ConvTranspose3d):
        if (k, stride, pad, module.output_padding[0]) == (3, 2, 1, 1):
            return torch.tensor([0.0, 1.0, 1.0])
    elif isinstance(module, nn.Conv3d):
        if stride == 1 and module.padding_mode == "reflect":
            return torch.full((k,), 1.0 / k)
        if (k, stride, pad) == (3, 2, 1) and module.padding_mode == "zeros":
            return torch.tensor([0.0, 0.5, 0.5])
    raise BenchError(f"cannot inflate {module}: no depth taps that keep a depth-constant volume "
                     "depth-constant are known for it")


def inflate_state(trunk3d: nn.Module, state2d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The 2D state dict as the state dict of `trunk3d` (a 3D ResnetTrunk of the same ngf and
    n_blocks). The axial axis is the first spatial axis, as datasets.spec.SLICE_AXES has it."""
    out = {}
    for name, module in trunk3d.named_modules():
        if not isinstance(module, (nn.Conv3d, nn.ConvTranspose3d)):
            continue
        w2 = state2d[f"{name}.weight"]
        taps = depth_taps(module).to(w2.dtype)
        out[f"{name}.weight"] = w2[:, :, None] * taps.view(1, 1, -1, 1, 1)
        if module.bias is not None:
            out[f"{name}.bias"] = state2d[f"{name}.bias"].clone()  # the taps sum to one
    missing = set(trunk3d.state_dict()) - set(out)
    if missing:
        raise BenchError(f"inflating left {sorted(missing)[0]} without weights")
    return out
