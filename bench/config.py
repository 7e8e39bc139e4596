"""What every command that trains units is told: which strategies on which tasks, where to write,
and the settings they all share. `bench run` (`RunConfig`) and `bench tune` (`TuneConfig`) add
their own; bench/cli.py fills them from the command line."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from bench.profiles import DEFAULT_RECIPE


def default_cache() -> Path:
    return Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "gan-init-bench"))


@dataclass(kw_only=True)
class UnitsConfig:
    strategies: list[str]
    tasks: list  # built-in names, task .toml paths or TaskSpecs (`--source`)
    out: Path
    profile: str = "quick"
    recipe: str = DEFAULT_RECIPE  # bench/profiles.toml [recipes]: the same for every strategy
    device: str = "auto"
    precision: str = "auto"  # bench.device.resolve_precision: bf16 where computed natively
    cache_dir: Path = field(default_factory=default_cache)
    data_seed: int = 0
    # The axes (bench/variants.py): each value a task variant of its own. None: the task file's
    # `train_subjects` (if any) and the profile's pretext steps.
    train_subjects: list[int] | None = None
    pretext_scales: list[float] | None = None
    threads: int | None = None  # torch's intra-op threads; None: its default
    progress: bool = True
