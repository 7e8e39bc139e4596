"""Initialization strategies: the registry and the built-ins (plugins are loaded by
bench/plugins.py).

A built-in strategy is one module in this folder: every module here but the registry and the
weight inflation it may use is imported, so its `@register_strategy` class joins the registry
(and the statistical plan, bench/plan.py) without being listed anywhere else."""

import importlib
import pkgutil

from strategies import registry as _registry
from strategies.registry import (BASELINE, TRUNK_PARTS, Strategy, applies, copy_into, copy_trunk,
                                 get_strategy, list_strategies, register_strategy, strategy_origin,
                                 transfer_report)

_MACHINERY = {"registry", "inflate"}
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module not in _MACHINERY:
        importlib.import_module(f"{__name__}.{_module}")
for _name in list_strategies():
    _registry.set_origin(_name, "built-in")

__all__ = ["Strategy", "register_strategy", "applies", "get_strategy", "list_strategies", "strategy_origin",
           "copy_into", "copy_trunk", "transfer_report", "TRUNK_PARTS", "BASELINE"]
