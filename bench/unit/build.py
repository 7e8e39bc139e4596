"""One unit, built the same way for `bench run` and `bench tune`: task data, evaluator,
pretexts, networks, the strategy's initialization and training. The two commands differ only in
what they pass (the evaluator's held-out split, seeds, a tuned trial), never in how a unit is
made, so their defaults cannot drift apart.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

import datasets
import strategies
from bench.config import UnitsConfig
from bench.device import check_precision, resolve_device, resolve_precision
from bench.metrics.evaluation import Evaluator
from bench.nets import build_networks, count_parameters
from bench.pretext import PretextContext, PretextDiverged, get_pretext
from bench.profiles import Settings, get_settings
from bench.tensorboard_log import UnitLog
from bench.variants import Variant
from bench.train import UnitResult, train_unit
from ground.errors import BenchError

# Tuning trials' network, noise and pretext seeds start here; `bench run` evaluates seeds
# 0..N-1, so hyper-parameters are never chosen on the seeds (or pretexts) they are judged on.
TUNING_SEEDS = 10_000
# Harness settings a strategy's own search space may set (the rest of its parameters go to its
# `configure`).
HARNESS = ("lr_g", "lr_d", "beta1", "r1_gamma", "ema_decay")
SETTINGS = HARNESS + ("transfer_lr_scale",)


def suggest_harness(trial) -> dict:
    """The harness's search space on an Optuna trial: what `bench tune` searches and what
    `bench stability` draws from."""
    return {"lr_g": trial.suggest_float("lr_g", 1e-5, 1e-2, log=True),
            "lr_d": trial.suggest_float("lr_d", 1e-5, 1e-2, log=True),
            "beta1": trial.suggest_float("beta1", 0.0, 0.9),
            "r1_gamma": trial.suggest_float("r1_gamma", 1e-3, 10.0, log=True),
            "ema_decay": trial.suggest_categorical("ema_decay", [0.0, 0.9, 0.99, 0.999])}


def check_inputs(cfg: UnitsConfig) -> tuple[torch.device, list, dict[str, Settings]]:
    """Device, task specs and settings per task of a run or tuning config, every name checked
    (one-line errors) before anything is written."""
    device = resolve_device(cfg.device)
    check_precision(cfg.precision)
    for name in cfg.strategies:
        strategies.get_strategy(name)
    specs = [t if isinstance(t, datasets.TaskSpec) else datasets.get_task(t) for t in cfg.tasks]
    from datasets.real import REAL_SOURCES, check_source
    for spec in specs:
        if spec.source in REAL_SOURCES:
            check_source(spec)  # a missing or empty folder, too few pairs: before any writing
    for name in cfg.strategies:
        if not any(strategies.applies(name, spec.dims) for spec in specs):
            dims = " or ".join(f"{d}D" for d in strategies.get_strategy(name).dims)
            raise BenchError(f"strategy {name} applies to {dims} tasks only and none is "
                             "selected; add such a --task or leave the strategy out")
    names = [spec.name for spec in specs]
    if len(set(names)) < len(names):
        raise BenchError(f"task {max(names, key=names.count)} given twice; name each task once")
    return device, specs, {spec.name: get_settings(cfg.profile, spec.dims, cfg.recipe)
                           for spec in specs}


def task_data(spec, s: Settings, cache_dir: Path, data_seed: int, progress: bool):
    return datasets.build_task_data(spec, s.image_size, cache_dir, data_seed,
                                    splits=dict(s.splits) if s.splits else None, progress=progress)


def split_identity(data) -> dict:
    """What a study records of the split it tuned on: the data seed, the data fingerprint (over
    every split's tensors) and, for real sources, the subject ids per split."""
    return {"data_seed": data.data_seed, "fingerprint": data.fingerprint,
            "subjects": {k: list(v) for k, v in data.subjects.items()}}


def apply_tuned(s: Settings, strategy, tuned: dict) -> Settings:
    """Settings with the tuned harness values; the strategy configured with its own."""
    params = tuned["params"]
    strategy.configure({k: v for k, v in params.items() if k not in SETTINGS})
    return dataclasses.replace(s, **{k: params[k] for k in SETTINGS if k in params})


class PretextFailed(Exception):
    """A pretext a strategy needs diverged in training: its units fail and count as lost; the
    others run. Any other error while getting a pretext propagates as itself (rerun)."""


class Pretexts:
    """A task's pretext artifacts by (name, pretext seed), each loaded or trained once."""

    def __init__(self, data, s: Settings, device: torch.device, precision: str,
                 cache_dir: Path, progress: bool):
        self.data, self.s, self.device, self.precision = data, s, device, precision
        self.cache_dir, self.progress = cache_dir, progress
        self.found: dict[tuple[str, int], object] = {}
        self.diverged: dict[tuple[str, int], str] = {}

    def get(self, names, seed: int) -> dict:
        """{name: artifact}; PretextFailed with the reason when one diverged in training."""
        ctx = PretextContext(self.data, self.s, seed, self.device, self.precision, self.progress)
        out = {}
        for name in names:
            key = (name, seed)
            if key not in self.found and key not in self.diverged:
                try:
                    self.found[key] = get_pretext(name, ctx, self.cache_dir)
                except PretextDiverged as err:  # remembered: the next unit fails at once
                    self.diverged[key] = (f"pretext {name} (seed {seed}) failed: "
                                          f"{type(err).__name__}: {err}")
            if key in self.diverged:
                raise PretextFailed(self.diverged[key])
            out[name] = self.found[key]
        return out


@dataclass
class Task:
    """Everything a task's units share: its settings, data, evaluator and pretexts."""

    spec: Variant  # the task, or one of its variants (its name is the rows' `task`)
    s: Settings  # the variant's
    data: object  # what the GAN and the pretexts train on: the variant's training subjects
    evaluator: Evaluator
    pretexts: Pretexts
    device: torch.device
    precision: str
    progress: bool


def prepare_task(spec, s: Settings, device: torch.device, precision: str, cache_dir: Path,
                 data_seed: int, progress: bool, against: str = "test", inception: bool = True,
                 data=None) -> Task:
    """`spec`: a task spec or a bench.variants.Variant of one, `s` the task's settings (the
    variant's are derived here), `data` the task's full data when already built.
    `against`: the held-out split samples are scored on (`bench tune`: "val", so test images
    never choose hyper-parameters); `inception`: whether the final metrics include it.
    The evaluator always sees the full task: a variant changes what trains, not the metric."""
    precision = resolve_precision(precision, device).name  # `auto`: this device's choice
    variant = spec if isinstance(spec, Variant) else Variant(spec)
    full = data if data is not None else task_data(variant.spec, s, cache_dir, data_seed, progress)
    trains, s = variant.data(full), variant.settings(s)
    evaluator = Evaluator(full, s, device, precision, cache_dir, progress, against=against,
                          inception=inception, train=trains.train.t1)
    return Task(variant, s, trains, evaluator,
                Pretexts(trains, s, device, precision, cache_dir, progress), device, precision,
                progress)


@dataclass
class Unit:
    """A strategy's networks for one seed, initialized, with what it transferred and used."""

    strategy: str
    seed: int
    s: Settings  # the task's, with a tuned trial's values applied
    G: torch.nn.Module
    D: torch.nn.Module
    transfer: dict
    pretexts: dict


def build_unit(task: Task, strategy_name: str, seed: int, pretext_seed: int,
               tuned: dict | None = None) -> Unit:
    """The fixed G and D for `seed`, started where the strategy puts them (PretextFailed when
    a pretext it needs could not be trained)."""
    strategy = strategies.get_strategy(strategy_name)
    s = task.s if tuned is None else apply_tuned(task.s, strategy, tuned)
    used = task.pretexts.get(strategy.needs, pretext_seed)
    G, D = build_networks(s, seed)
    transfer = dict(strategy.initialize(G, D, used) or {})
    transfer.update(g_parameters=count_parameters(G), d_parameters=count_parameters(D))
    return Unit(strategy_name, seed, s, G, D, transfer, used)


def train(task: Task, unit: Unit, checkpoint: Path | None, label: str,
          on_evaluate: Callable[[int, float | None], None] | None = None,
          budget_steps: tuple[int, ...] = (), log_dir: Path | None = None) -> UnitResult:
    """`log_dir`: the unit's TensorBoard event files."""
    with UnitLog(log_dir) if log_dir is not None else contextlib.nullcontext() as log:
        return train_unit(unit.G, unit.D, task.data, unit.s, unit.seed, task.device,
                          task.precision, task.evaluator, checkpoint=checkpoint,
                          progress=task.progress, label=label, on_evaluate=on_evaluate,
                          transferred=unit.transfer, budget_steps=budget_steps, log=log)
