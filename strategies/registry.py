"""A tiny registry of initialization strategies, in the spirit of timm's model registry.

A strategy decides only where the fixed G and D start: it never trains anything itself. It
declares the pretext artifacts it needs and returns what it transferred, which goes into results.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ground.errors import BenchError

_REGISTRY: dict[str, type["Strategy"]] = {}
_ORIGIN: dict[str, str] = {}
TRUNK_PARTS = ("encoder", "residual", "decoder")
# The strategy every other one is compared with; it trains on to the others' compute budgets.
BASELINE = "scratch"


class Strategy:
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ()
    dims: ClassVar[tuple[int, ...]] = (2, 3)  # the task dimensionalities it applies to

    def search_space(self, trial) -> None:
        """Optional, for `bench tune`: suggest this strategy's own hyper-parameters on the Optuna
        trial (names other than the harness's: lr_g, lr_d, beta1, r1_gamma, ema_decay). By
        default a strategy that transfers weights (one that `needs` a pretext) searches the
        harness's `transfer_lr_scale`: how fast its transferred layers train, relative to the
        rest. Override and call `super().search_space(trial)` to keep it."""
        if self.needs:
            trial.suggest_float("transfer_lr_scale", 0.01, 1.0, log=True)

    def configure(self, params: dict) -> None:
        """Apply the values `search_space` suggested (also when rerunning a tuned trial)."""

    def initialize(self, G: nn.Module, D: nn.Module, pretexts: dict) -> dict[str, int]:
        """Copy weights into G (``stem``, ``trunk.encoder|residual|decoder``) and/or D from
        ``pretexts[name].state``; return parameter counts transferred per part."""
        raise NotImplementedError


def register_strategy(name: str):
    """Class decorator: ``@register_strategy("my-init")``."""

    def wrap(cls: type[Strategy]) -> type[Strategy]:
        if not (isinstance(cls, type) and issubclass(cls, Strategy)):
            raise BenchError(f"strategy '{name}' must subclass strategies.Strategy")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise BenchError(f"strategy '{name}' is registered twice "
                             f"({_ORIGIN[name]} and {cls.__module__}); rename one")
        cls.name = name
        _REGISTRY[name] = cls
        _ORIGIN.setdefault(name, cls.__module__)
        return cls

    return wrap


def list_strategies() -> list[str]:
    return sorted(_REGISTRY)


def strategy_origin(name: str) -> str:
    return _ORIGIN[name]


def set_origin(name: str, origin: str) -> None:
    """Where a registered strategy came from: "built-in", or the plugin that added it."""
    _ORIGIN[name] = origin


def get_strategy(name: str) -> Strategy:
    if name not in _REGISTRY:
        raise BenchError(f"unknown strategy '{name}'; known: {', '.join(list_strategies())} "
                         "(load others with --plugin FILE_OR_MODULE)")
    return _REGISTRY[name]()


def copy_into(target: nn.Module, source: dict[str, torch.Tensor], part: str = "") -> int:
    """Copy every tensor of ``target`` (restricted to names under ``part``) from ``source``;
    shapes must match exactly. Returns the number of parameters copied."""
    own = target.state_dict()
    names = [n for n in own if not part or n == part or n.startswith(part + ".")]
    missing = [n for n in names if n not in source]
    if missing:
        raise BenchError(f"pretext weights lack {missing[0]} (and {len(missing) - 1} more): "
                         "was the pretext built with other settings?")
    copied = 0
    with torch.no_grad():
        for n in names:
            if own[n].shape != source[n].shape:
                raise BenchError(f"shape mismatch for {n}: {tuple(source[n].shape)} in the pretext, "
                                 f"{tuple(own[n].shape)} in the network; build both with the same profile")
            own[n].copy_(source[n])
            copied += own[n].numel()
    return copied


def copy_trunk(G: nn.Module, source: dict[str, torch.Tensor]) -> dict[str, int]:
    """The whole trunk (encoder, residual, decoder) from a trunk's state dict: counts per part."""
    return {part: copy_into(G.trunk, source, part) for part in TRUNK_PARTS}


def applies(name: str, dims: int) -> bool:
    """Whether strategy `name` runs on tasks of `dims` (a plan leaves it out elsewhere)."""
    return dims in _REGISTRY[name].dims


def transfer_report(**counts: int) -> dict[str, int]:
    """Counts per part, with every part present (zero when not transferred) and a total."""
    report = {p: 0 for p in ("stem", *TRUNK_PARTS, "discriminator")}
    report.update(counts)
    report["total"] = sum(report.values())
    return report
