"""How far training moved the weights from where a strategy put them: per part of G and D, the
relative L2 distance ||w - w0|| / ||w0|| over the part's parameters. A transfer that training
moves far from acted as a starting point; one it stays near acted as a prior."""

from __future__ import annotations

import math

import torch
from torch import nn

# Where each part lives: (network, parameter prefix). All but D's head, which is always fresh,
# are parts a strategy can transfer (bench.train.TRANSFER_PREFIXES).
PARTS = {"stem": ("G", "stem"), "encoder": ("G", "trunk.encoder"),
         "residual": ("G", "trunk.residual"), "decoder": ("G", "trunk.decoder"),
         "discriminator": ("D", "model"), "head": ("D", "head")}


def snapshot(G: nn.Module, D: nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    return {name: {k: p.detach().float().cpu().clone() for k, p in net.named_parameters()}
            for name, net in (("G", G), ("D", D))}


def weight_movement(start: dict[str, dict[str, torch.Tensor]], G: nn.Module,
                    D: nn.Module) -> dict[str, float | None]:
    """Per part, ||w - w0|| / ||w0||; None for a part without parameters, or with non-finite
    weights."""
    now = snapshot(G, D)
    out: dict[str, float | None] = {}
    for part, (net, prefix) in PARTS.items():
        names = [k for k in start[net] if k == prefix or k.startswith(prefix + ".")]
        moved = sum(float((now[net][k] - start[net][k]).pow(2).sum()) for k in names)
        size = sum(float(start[net][k].pow(2).sum()) for k in names)
        ok = names and size > 0 and math.isfinite(moved)
        out[part] = math.sqrt(moved / size) if ok else None
    return out
