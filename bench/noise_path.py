"""Where G loses its noise: per stage of the generator (stem, encoder, each residual block,
decoder), how much of the activations varies with z.

The measure is the spread over noise vectors (the standard deviation over a batch of z at each
activation, averaged) relative to the activations' mean magnitude: 0 when a stage draws the same
thing whatever z is. A transfer strategy's trunk and a fresh one are compared on the same z.
"""

from __future__ import annotations

import torch
from torch import nn


def stages(G: nn.Module) -> dict[str, nn.Module]:
    """The stages of a bench.nets.NoiseToImageGenerator whose outputs are measured, in order."""
    trunk = G.trunk
    # The encoder and decoder run layer by layer (bench.nets._run): their last layers' outputs.
    out = {"stem": G.stem, "encoder": trunk.encoder[-1]}
    out.update({f"residual {i + 1}": block for i, block in enumerate(trunk.residual)})
    out["decoder"] = trunk.decoder[-1]
    return out


def relative_spread(x: torch.Tensor) -> float:
    """Spread over the batch (dimension 0) relative to the mean magnitude."""
    x = x.float()
    return float(x.std(0).mean() / x.abs().mean().clamp_min(1e-12))


@torch.no_grad()
def spread_by_stage(G: nn.Module, z: torch.Tensor) -> dict[str, float]:
    """{stage: relative spread of its output over the noise vectors z}, in G's eval mode."""
    found: dict[str, float] = {}
    hooks = [module.register_forward_hook(
        lambda _m, _inp, out, name=name: found.__setitem__(name, relative_spread(out)))
        for name, module in stages(G).items()]
    was_training = G.training
    try:
        G.eval()(z)
    finally:
        G.train(was_training)
        for h in hooks:
            h.remove()
    return found
