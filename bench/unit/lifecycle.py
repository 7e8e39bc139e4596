"""A unit from start to row: built, trained, evaluated, accounted and recorded, in one call
that `bench run`, `bench stability` and the launchers' workers share; and what the units of one
task share in a run (the task, the evaluator's reference, the real samples shown beside them)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

import strategies
from bench.config import UnitsConfig
from bench.memory import memory_error, out_of_memory
from bench.metrics.evaluation import Evaluator
from bench.metrics.events import detect_events
from bench.nets import build_networks
from bench.profiles import Settings
from bench.records import EvaluatorReference, UnitRecord
from bench.store import RunStore, unit_stem
from bench.unit.build import PretextFailed, Task, build_unit, prepare_task, train
from bench.unit.outcome import (extension_spent, metrics_at_budgets, spent, unit_metrics,
                                with_flops)
from bench.unit.record import failed_row, pretext_seed, pretext_summary, unit_row
from bench.variants import Variant


@dataclass
class OpenTask:
    """What every unit of a task shares in a run."""

    task: Task
    reference: EvaluatorReference
    real_samples: str  # the held-out images' picture, set beside every unit's samples


def open_task(variant: Variant, s: Settings, cfg: UnitsConfig, device: torch.device,
              precision: str, store: RunStore, data) -> OpenTask:
    """The task built on `data` (its evaluator and pretexts), the evaluator's floors and
    ceilings, and the real samples, written once for its units."""
    task = prepare_task(variant, s, device, precision, cfg.cache_dir, cfg.data_seed, cfg.progress,
                        data=data)
    reference = reference_record(task.evaluator, task.s, device, precision)
    real = store.write_real_samples(variant.name, task.evaluator.held_out, task.s.dims)
    return OpenTask(task, reference, real)


def run_unit(opened: OpenTask, strategy_name: str, seed: int, cfg, store: RunStore,
             tuned: dict | None = None, budgets: dict | None = None,
             draw: dict | None = None) -> UnitRecord:
    """The unit's record, a failed one if it could not finish (its pretext diverged, or any
    error: one broken unit or plugin must not sink the others). Out of memory stops the run,
    since every later unit would fail alike, and says what to lower. `budgets` (the baseline
    only): train on to each strategy's compute budget; `draw` (a stability study): the
    hyper-parameters this seed trains with."""
    task = opened.task
    try:
        return _run_unit(opened, strategy_name, seed, cfg, store, tuned, budgets, draw)
    except PretextFailed as err:
        reason, failure = str(err), "pretext"
    except Exception as err:
        if out_of_memory(err):
            raise memory_error(cfg.profile, f"training {task.spec.name} {strategy_name} seed "
                               f"{seed} on {task.device}", task.s) from None
        reason, failure = f"{type(err).__name__}: {err}", "error"
    return failed_row(task.spec, strategy_name, seed, cfg, task.device, task.data, task.s,
                      reason, failure, tuned, draw)


def _run_unit(opened: OpenTask, strategy_name: str, seed: int, cfg, store: RunStore,
              tuned: dict | None, budgets: dict | None, draw: dict | None) -> UnitRecord:
    task, reference = opened.task, opened.reference
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
             "real_samples": opened.real_samples}
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
                     precision: str) -> EvaluatorReference:
    """The evaluator's floors and ceilings for a task: its untrained generator is seed 0's."""
    G, _ = build_networks(s, 0)
    z = torch.randn(evaluator.n, s.z_dim, generator=torch.Generator().manual_seed(0))
    return evaluator.reference(evaluator.generate(G.to(device), z, precision))
