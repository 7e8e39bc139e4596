"""Initialization strategies: the registry, the built-ins, and plugin loading.

A built-in strategy is one module in this folder: every module here but the registry and the
plugin loader is imported, so its `@register_strategy` class joins the registry (and the
statistical plan, bench/plan.py) without being listed anywhere else."""

import importlib
import pkgutil

from strategies import registry as _registry
from strategies.plugins import load_plugin, load_plugins
from strategies.registry import (BASELINE, TRUNK_PARTS, Strategy, applies, copy_into, copy_trunk,
                                 get_strategy, list_strategies, register_strategy, strategy_origin,
                                 transfer_report)

_MACHINERY = {"registry", "plugins"}
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module not in _MACHINERY:
        importlib.import_module(f"{__name__}.{_module}")
for _name in list_strategies():
    _registry._ORIGIN[_name] = "built-in"

__all__ = ["Strategy", "register_strategy", "applies", "get_strategy", "list_strategies", "strategy_origin",
           "copy_into", "copy_trunk", "transfer_report", "load_plugin", "load_plugins", "TRUNK_PARTS", "BASELINE"]
