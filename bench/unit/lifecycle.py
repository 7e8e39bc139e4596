"""A unit from start to row: built, trained, evaluated, accounted and recorded, in one call
that `bench run`, `bench stability` and the launchers' workers share."""

from __future__ import annotations

import time

import torch

import strategies
from bench.metrics.evaluation import Evaluator
from bench.metrics.events import detect_events
from bench.nets import build_networks
from bench.profiles import Settings
from bench.records import Reference, UnitRecord
from bench.store import RunStore, unit_stem
from bench.unit.build import Task, build_unit, train
from bench.unit.outcome import (extension_spent, metrics_at_budgets, spent, unit_metrics,
                                with_flops)
from bench.unit.record import pretext_seed, pretext_summary, unit_row


def run_unit(task: Task, strategy_name: str, seed: int, cfg, store: RunStore,
             reference: Reference, real_samples: str, tuned: dict | None = None,
             budgets: dict | None = None, draw: dict | None = None) -> UnitRecord:
    """`budgets` (the baseline only): train on to each strategy's compute budget; `draw` (a
    stability study): the hyper-parameters this seed trains with."""
    spec, data, evaluator, device = task.spec, task.data, task.evaluator, task.device
    stem = unit_stem(spec.name, strategy_name, seed)
    budgets = budgets or {}
    unit = build_unit(task, strategy_name, seed, pretext_seed(cfg, seed), tuned or draw)
    start = time.perf_counter()  # a pretext trained for this seed counts in its own seconds
    s, G, used, transfer = unit.s, unit.G, unit.pretexts, unit.transfer
    result = train(task, unit, store.checkpoint_path(stem), f"{spec.name} {strategy_name} seed{seed}",
                   budget_steps=tuple(sorted({b["step"] for b in budgets.values()})),
                   log_dir=store.tensorboard_dir(stem))
    tic = time.perf_counter()
    metrics, missing = unit_metrics(result, evaluator)
    final_seconds = time.perf_counter() - tic
    events = detect_events(result.curve, s, reference.floors.get("coverage"),
                           result.diverged_step if result.status == "diverged" else None,
                           reference.floors.get("modes_covered"))
    compute = spent(result, s, G, evaluator, used)
    before = sum(p["flops"] for p in compute["pretexts"].values())  # a curve's FLOPs start here
    files = {"curve": store.write_curve(stem, with_flops(result.curve, s, before)),
             "extension_curve": None, "samples": None, "samples_nifti": None, "closest": None,
             "real_samples": real_samples}
    at_budgets = None
    if budgets:
        tic = time.perf_counter()
        at_budgets = metrics_at_budgets(result, metrics, budgets, s, evaluator)
        final_seconds += time.perf_counter() - tic
        compute["extension"] = extension_spent(result, s)
        if result.extension:
            files["extension_curve"] = store.write_curve(
                f"{stem}__extension", with_flops(result.extension, s, before))
    if result.samples is not None:
        files.update(store.write_samples(stem, result.samples, s.dims))
        files["closest"] = store.write_closest(stem, result.samples, data.train.t1, s.dims)
    # The final metrics' fixed cost, apart: what remains of `seconds` past training is the
    # evaluations during training and the bookkeeping.
    compute["final_metrics_seconds"] = round(final_seconds, 2)
    return unit_row(spec, strategy_name, seed, cfg, device, data, s,
                    status=result.status, reason=result.reason,
                    diverged_step=result.diverged_step, steps=result.steps,
                    train_seconds=round(result.train_seconds, 2),
                    seconds=round(time.perf_counter() - start, 2), metrics=metrics,
                    resumed_step=result.resumed_step, metrics_missing=missing, events=events,
                    reference=reference, transfer=transfer, movement=result.movement,
                    pretexts=pretext_summary(used), compute=compute, budgets=at_budgets,
                    mode_counts=evaluator.mode_counts(result.samples), tuned=tuned, draw=draw,
                    strategy_origin=strategies.strategy_origin(strategy_name), files=files)


def reference_record(evaluator: Evaluator, s: Settings, device: torch.device,
                     precision: str) -> Reference:
    """The evaluator's floors and ceilings for a task: its untrained generator is seed 0's."""
    G, _ = build_networks(s, 0)
    z = torch.randn(evaluator.n, s.z_dim, generator=torch.Generator().manual_seed(0))
    return Reference(**evaluator.reference(evaluator.generate(G.to(device), z, precision)))
