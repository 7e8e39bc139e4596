"""Three routes for outside strategies (and metrics): a .py file, an importable module, an entry
point."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path

from ground.errors import BenchError
from strategies import registry

ENTRY_POINT_GROUP = "bench.strategies"
_LOADED: dict[str, list[str]] = {}  # plugin -> names it added, so loading twice is harmless


def _import_file(path: Path):
    name = f"bench_plugin_{path.stem.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot build an import spec for {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _metrics() -> set[str]:
    from bench.metrics.registry import REGISTRY
    return {f"metric {name}" for name in REGISTRY}


def _load(label: str, origin: str, loader) -> list[str]:
    """The strategies (and metrics, as "metric NAME") the plugin added."""
    before = set(registry.list_strategies()) | _metrics()
    try:
        loader()
    except BenchError as err:
        raise BenchError(f"plugin {label}: {err}") from err
    except Exception as err:  # any import-time failure of user code becomes one line
        raise BenchError(f"plugin {label} failed to import: {type(err).__name__}: {err}") from err
    added = sorted(set(registry.list_strategies()) - before)
    for name in added:
        registry.set_origin(name, origin)
    return added + sorted(_metrics() - before)


def load_plugin(spec: str) -> list[str]:
    """``spec`` is a path to a .py file or a dotted module path; returns the names it added."""
    path = Path(spec)
    key = str(path.resolve()) if path.is_file() else spec
    if key in _LOADED and all(n in registry._REGISTRY | dict.fromkeys(_metrics())
                              for n in _LOADED[key]):
        return _LOADED[key]
    if spec.endswith(".py") or path.exists():
        if not path.is_file():
            raise BenchError(f"plugin file {spec} does not exist; give a .py file or a module path")
        added = _load(spec, f"plugin {path}", lambda: _import_file(path.resolve()))
    else:
        added = _load(spec, f"module {spec}", lambda: importlib.import_module(spec))
    if not added:
        raise BenchError(f"plugin {spec} registered no new strategy or metric; decorate a Strategy "
                         "subclass with @register_strategy(\"name\") or call "
                         "bench.metrics.registry.register(Metric(...))")
    _LOADED[key] = added
    return added


def load_entry_points() -> list[str]:
    added: list[str] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist else "?"
        added += _load(f"entry point {ep.name} ({dist})", f"entry point {ep.name} ({dist})", ep.load)
    return added


def load_plugins(specs: list[str] | None = None) -> list[str]:
    added = load_entry_points()
    for spec in specs or []:
        added += load_plugin(spec)
    return added
