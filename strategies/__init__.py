"""Initialization strategies: the registry, the built-ins, and plugin loading."""

from strategies import registry as _registry
from strategies.registry import (BASELINE, TRUNK_PARTS, Strategy, copy_into, get_strategy, list_strategies,
                                 register_strategy, strategy_origin, transfer_report)
from strategies import cyclegan_partial, cyclegan_t2t1, pretrained_encoder, scratch  # noqa: F401,E402
from strategies.plugins import load_plugin, load_plugins  # noqa: E402

for _name in list_strategies():
    _registry._ORIGIN[_name] = "built-in"

__all__ = ["Strategy", "register_strategy", "get_strategy", "list_strategies", "strategy_origin",
           "copy_into", "transfer_report", "load_plugin", "load_plugins", "TRUNK_PARTS", "BASELINE"]
