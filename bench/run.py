"""`bench run`: the plan of (task, strategy, seed) units under one fixed harness, every input
checked before anything is written, and each unit not yet in the run store handed to its
lifecycle (bench/unit/) in (task, seed) groups. The CLI reports the run directory it fills.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

import strategies
from bench.device import resolve_precision
from bench.config import UnitsConfig
from bench.profiles import DEFAULT_SEEDS
from bench.store import RunStore, unit_id
from bench.tuning.stability import draws
from bench.unit import baseline_budgets, check_inputs, open_task, run_unit, task_data
from bench.variants import plan_variants
from ground.errors import BenchError


@dataclass(kw_only=True)
class RunConfig(UnitsConfig):
    seeds: int = DEFAULT_SEEDS
    # None: seed k's units use pretext k, so intervals over seeds include the pretext's own
    # variance; N: one pretext shared by every seed (an amortized study), recorded as such.
    pretext_seed: int | None = None
    # (i, n): this machine runs every n-th (task, seed) from the i-th, all strategies of each, so
    # a seed's units (and, unless --pretext-seed shares one, its pretext) stay on one machine.
    shard: tuple[int, int] = (0, 1)
    tuned: str | None = None  # Optuna storage URL: each (task, strategy) with its best trial
    # `bench stability`: seed k trains with draw k of the harness search space, drawn with this
    # seed (bench/tuning/stability.py); None for a comparison run.
    draw_seed: int | None = None
    worker: bool = False  # a launcher's worker, filling its shard of a launched run


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n), with 0 <= i < n."""
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise BenchError(f"--shard {text!r}: expected I/N, e.g. 0/4 for the first of 4 machines") from None
    if not 0 <= i < n:
        raise BenchError(f"--shard {text}: need 0 <= I < N (the shards of 4 machines are 0/4 .. 3/4)")
    return i, n


def _data_identities(specs) -> dict:
    """Real tasks' data (root, files): a rerun on other or edited scans is refused, not mixed
    with the finished units. Generated tasks add nothing (their data follow from the seed)."""
    from datasets.real import source_identity
    found = {spec.name: source_identity(spec) for spec in specs}
    return {f"data {name}": ident for name, ident in found.items() if ident is not None}


def _plan(cfg: RunConfig) -> tuple:
    """(device, specs, settings, variants, groups, this shard's units), every input checked."""
    if cfg.seeds < 1:
        raise BenchError(f"--seeds {cfg.seeds}: need at least 1")
    if cfg.threads is not None and cfg.threads < 1:
        raise BenchError(f"--threads {cfg.threads}: need at least 1")
    device, specs, settings = check_inputs(cfg)
    variants = plan_variants(specs, cfg.train_subjects, cfg.pretext_scales)
    shard, shards = cfg.shard
    if not 0 <= shard < shards:
        raise BenchError(f"shard {shard}/{shards}: need 0 <= I < N")
    # Every n-th (task, seed) of the full plan, in a fixed order, with all its strategies:
    # machines given the same arguments and different shards run disjoint units that together
    # make the whole plan, and a seed's units (and, by default, its pretexts) stay on one
    # machine. Seed-major, so that more --seeds later keep every earlier group on its shard.
    groups = [(variant, seed) for seed in range(cfg.seeds) for variant in variants]
    plan = [(variant, st, seed) for variant, seed in groups[shard::shards]
            for st in cfg.strategies if strategies.applies(st, variant.dims)]
    if not plan:
        raise BenchError(f"shard {shard}/{shards} has no units (the plan has {len(groups)} "
                         "(task, seed) groups); use at most that many shards")
    return device, specs, settings, variants, groups, plan


def check_plan(cfg: RunConfig) -> tuple[list[tuple[str, int]], int]:
    """The whole plan's (task, seed) groups, in shard order, and its number of units, for a
    launcher to split: the same checks as `run`, nothing written."""
    *_, groups, plan = _plan(dataclasses.replace(cfg, shard=(0, 1)))
    return [(variant.name, seed) for variant, seed in groups], len(plan)


def run(cfg: RunConfig) -> Path:
    """Every unit of the plan not yet in the run store; the run directory (the CLI reports it)."""
    device, specs, settings, variants, groups, plan = _plan(cfg)
    precision = resolve_precision(cfg.precision, device).name
    if not cfg.worker and (Path(cfg.out) / "launch.json").exists():
        raise BenchError(f"{cfg.out} holds a launched run (its rows are in shards/); rerun it "
                         "with the same --launcher, or use a new --out")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    shard, shards = cfg.shard
    # The full data of each task, built once, checked (enough training subjects for every
    # variant) before anything is written.
    datas = {spec.name: task_data(spec, settings[spec.name], cfg.cache_dir, cfg.data_seed,
                                  cfg.progress) for spec in specs}
    trains = {v.name: v.data(datas[v.spec.name]) for v in variants}
    tuned = {}
    if cfg.tuned and cfg.draw_seed is not None:
        raise BenchError("a stability study draws its hyper-parameters: it takes no --tuned")
    drawn = draws(cfg.seeds, cfg.draw_seed) if cfg.draw_seed is not None else None
    if cfg.tuned:
        from bench.tuning.tune import check_tuned, load_tuned
        tuned = {(v.name, st): load_tuned(cfg.tuned, cfg.profile, v.name, st)
                 for v in variants for st in cfg.strategies if strategies.applies(st, v.dims)}
        # The split is checked before anything is written: a study tuned on other subjects
        # would let this run's test subjects have chosen its hyper-parameters.
        for (name, st), trial in tuned.items():
            check_tuned(trial, trains[name], cfg)
    store = RunStore(cfg.out)  # nothing is written before every input above has been checked
    store.check_settings({"profile": cfg.profile, "recipe": cfg.recipe, "precision": precision,
                          "device": device.type, "data_seed": cfg.data_seed,
                          "pretext_seed": cfg.pretext_seed, "shard": f"{shard}/{shards}",
                          "tuned": next(iter(tuned.values()))["storage"] if tuned else None,
                          "draw_seed": cfg.draw_seed,
                          **_data_identities(specs)},
                         older={"recipe": "plain"})  # runs from before recipes existed
    done = store.finished()
    bar = tqdm(total=len(plan), desc="units", unit="unit", disable=not cfg.progress)
    for variant in variants:
        pending = [(st, seed) for sp, st, seed in plan
                   if sp is variant and unit_id(variant.name, st, seed) not in done]
        bar.update(sum(1 for sp, _, _ in plan if sp is variant) - len(pending))
        if not pending:
            continue
        opened = open_task(variant, settings[variant.spec.name], cfg, device, precision, store,
                           datas[variant.spec.name])
        # A stability study compares draws step for step: no compute-matched extension.
        budgets = baseline_budgets(opened.task.s, cfg.strategies) if drawn is None else None
        for st, seed in sorted(pending, key=lambda unit: unit[1]):  # a seed's pretexts, then the next
            draw = (None if drawn is None else
                    {"index": seed, "seed": cfg.draw_seed, "params": drawn[seed]})
            store.append(run_unit(opened, st, seed, cfg, store, tuned.get((variant.name, st)),
                                  budgets if st == strategies.BASELINE else None, draw))
            bar.update(1)
    bar.close()
    return store.root
