"""Initialization strategies: the registry, the built-ins, and plugin loading."""

from strategies import registry as _registry
from strategies.registry import (BASELINE, TRUNK_PARTS, Strategy, applies, copy_into, copy_trunk,
                                 get_strategy, list_strategies, register_strategy,
                                 strategy_origin, transfer_report)
from strategies import (autoencoder_trunk, cyclegan_2d_inflated, cyclegan_partial,  # noqa: F401,E402
                        cyclegan_shuffled, cyclegan_t1t2, cyclegan_t2t1, cyclegan_with_d,
                        pretrained_encoder, scratch)
from strategies.plugins import load_plugin, load_plugins  # noqa: E402

for _name in list_strategies():
    _registry._ORIGIN[_name] = "built-in"

__all__ = ["Strategy", "register_strategy", "applies", "get_strategy", "list_strategies", "strategy_origin",
           "copy_into", "copy_trunk", "transfer_report", "load_plugin", "load_plugins", "TRUNK_PARTS", "BASELINE"]
