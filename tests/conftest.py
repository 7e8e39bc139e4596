"""Shared fixtures: one smoke-profile data and pretext cache for the whole session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bench-cache")


def _smoke(task: str, dims: int, cache_dir: Path):
    import datasets
    from bench.profiles import get_settings
    spec = datasets.get_task(task)
    s = get_settings("smoke", dims)
    data = datasets.build_task_data(spec, s.image_size, cache_dir, 0, splits=dict(s.splits),
                                    progress=False)
    return spec, s, data


@pytest.fixture(scope="session")
def smoke_2d(cache_dir):
    """(spec, settings, data) for phantom-2d in the smoke profile."""
    return _smoke("phantom-2d", 2, cache_dir)


@pytest.fixture(scope="session")
def smoke_3d(cache_dir):
    """(spec, settings, data) for phantom-3d in the smoke profile."""
    return _smoke("phantom-3d", 3, cache_dir)


@pytest.fixture(scope="session")
def smoke_pretexts(smoke_2d, cache_dir):
    from bench.pretext import PretextContext, get_pretext
    spec, s, data = smoke_2d
    ctx = PretextContext(data, s, 0, torch.device("cpu"), "fp32", progress=False)
    return {n: get_pretext(n, ctx, cache_dir) for n in ("cyclegan", "autoencoder")}


@pytest.fixture
def nan_strategy() -> str:
    """A registered strategy whose first loss is NaN (the registry is restored after the test)."""
    from strategies import Strategy, register_strategy, transfer_report

    @register_strategy("nan-init")
    class NanInit(Strategy):
        description = "poisons the stem so the first loss is NaN"

        def initialize(self, G, D, pretexts):
            with torch.no_grad():
                G.stem.fc.weight.fill_(float("nan"))
            return transfer_report()

    return NanInit.name


@pytest.fixture
def run_env(cache_dir, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE", str(cache_dir))
    return cache_dir


def pytest_configure(config):
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _restore_registry():
    """Strategies and metrics registered by one test must not leak into another."""
    from bench.metrics import registry as metric_registry
    from strategies import registry
    saved = dict(registry._REGISTRY), dict(registry._ORIGIN), dict(metric_registry.REGISTRY)
    yield
    registry._REGISTRY.clear(), registry._REGISTRY.update(saved[0])
    registry._ORIGIN.clear(), registry._ORIGIN.update(saved[1])
    metric_registry.REGISTRY.clear(), metric_registry.REGISTRY.update(saved[2])
