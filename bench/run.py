"""`bench run`: every (task, strategy, seed) unit under one fixed harness, into the run store.

Data flows one way: task data -> pretexts the chosen strategies need -> strategy initializes the
fixed G/D -> the fixed loop trains and evaluates -> one row per finished unit -> report.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import platform
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
from tqdm.auto import tqdm

import strategies
from bench.compute import evaluation_flops, gan_flops, steps_for
from bench.device import hardware, resolve_precision
from bench.errors import BenchError, memory_error, out_of_memory
from bench.metrics.evaluation import Evaluator
from bench.metrics.events import convergence, detect_events
from bench.nets import build_networks
from bench.pretext import pretext_flops
from bench.profiles import DEFAULT_RECIPE, DEFAULT_SEEDS, Settings
from bench.stability import draws
from bench.store import RunStore, unit_id, unit_stem
from bench.train import UnitResult
from bench.unit import (PretextFailed, Task, build_unit, check_inputs, default_cache, prepare_task,
                        task_data, train)
from bench.variants import plan_variants


@dataclass
class RunConfig:
    strategies: list[str]
    tasks: list  # built-in names, task .toml paths or TaskSpecs (`--source`)
    out: Path
    profile: str = "quick"
    seeds: int = DEFAULT_SEEDS
    device: str = "auto"
    precision: str = "auto"  # bench.device.resolve_precision: bf16 where computed natively
    cache_dir: Path = field(default_factory=default_cache)
    data_seed: int = 0
    # None: seed k's units use pretext k, so intervals over seeds include the pretext's own
    # variance; N: one pretext shared by every seed (an amortized study), recorded as such.
    pretext_seed: int | None = None
    progress: bool = True
    # (i, n): this machine runs every n-th (task, seed) from the i-th, all strategies of each, so
    # a seed's units (and, unless --pretext-seed shares one, its pretext) stay on one machine.
    shard: tuple[int, int] = (0, 1)
    tuned: str | None = None  # Optuna storage URL: each (task, strategy) with its best trial
    recipe: str = DEFAULT_RECIPE  # bench/profiles.toml [recipes]: the same for every strategy
    # `bench stability`: seed k trains with draw k of the harness search space, drawn with this
    # seed (bench/stability.py); None for a comparison run.
    draw_seed: int | None = None
    # The axes (bench/variants.py): each value a task variant of its own. None: the task file's
    # `train_subjects` (if any) and the profile's pretext steps.
    train_subjects: list[int] | None = None
    pretext_scales: list[float] | None = None
    threads: int | None = None  # torch's intra-op threads; None: its default
    report: bool = True  # False: a launcher's worker (its shard's rows; the launch is reported)


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n), with 0 <= i < n."""
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise BenchError(f"--shard {text!r}: expected I/N, e.g. 0/4 for the first of 4 machines") from None
    if not 0 <= i < n:
        raise BenchError(f"--shard {text}: need 0 <= I < N (the shards of 4 machines are 0/4 .. 3/4)")
    return i, n


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg, dist in [("torch", "torch"), ("monai", "monai"), ("torchio", "torchio"),
                      ("numpy", "numpy"), ("bench", "gan-init-bench")]:
        try:
            out[pkg] = version(dist)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _why_no_fid(rows: list[dict]) -> str:
    """Why the last of these evaluations without a domain FID has none, as the evaluator
    recorded it (rows of older checkpoints and a divergence's closing row have no reason)."""
    reasons = [r["fid_missing"] for r in rows if r.get("fid") is None and r.get("fid_missing")]
    return reasons[-1] if reasons else "reason not recorded"


def _metrics(result: UnitResult, evaluator: Evaluator) -> tuple[dict, dict]:
    """Domain-FID curve summaries, then the final-sample metrics (only for a finished unit)."""
    fids = result.fids()
    metrics = {"fid_init": None, "fid_final": None, "fid_best": None, "fid_best_step": None,
               "fid_gap": None, **convergence(result.curve)}
    missing: dict[str, str] = {}
    first = result.curve[0] if result.curve else None
    if first is not None and first["step"] == 0 and first["fid"] is not None:
        metrics["fid_init"] = first["fid"]
    else:
        missing["fid_init"] = (_why_no_fid([first]) if first is not None and first["step"] == 0
                               else "the initialized generator was not evaluated")
    if fids:
        step, best = min(fids, key=lambda sf: sf[1])
        metrics["fid_best"], metrics["fid_best_step"] = best, step
    else:
        why = f"no evaluation gave a domain FID: {_why_no_fid(result.curve)}"
        for name in ("fid_best", "fid_best_step", "fid_auc"):
            missing[name] = why
    last = [r for r in result.curve if r["step"] == result.steps and r["fid"] is not None]
    if result.status == "ok" and last:
        metrics["fid_final"] = last[-1]["fid"]
        metrics["fid_gap"] = metrics["fid_final"] - metrics["fid_best"]
        final, final_missing = evaluator.final(result.samples)
        metrics.update(final)
        missing.update(final_missing)
    else:
        at_end = [r for r in result.curve if r["step"] == result.steps]
        reason = result.reason or f"the final evaluation: {_why_no_fid(at_end)}"
        # An area over a curve cut short is not comparable with full-length ones.
        metrics["fid_auc"] = None
        missing["fid_final"] = missing["fid_gap"] = missing["fid_auc"] = reason
        missing["final_samples"] = f"no final-sample metrics: {reason}"
    return metrics, missing


def _pretext_summary(artifacts: dict) -> dict:
    keep = ("key", "seed", "weights", "steps", "seconds", "ssim", "psnr", "ssim_identity",
            "psnr_identity", "val_l1")
    return {n: {k: a.info.get(k) for k in keep if k in a.info} for n, a in artifacts.items()}


def pretext_seed(cfg: RunConfig, seed: int) -> int:
    return seed if cfg.pretext_seed is None else cfg.pretext_seed


def _row(spec, strategy_name: str, seed: int, cfg: RunConfig, device: torch.device, data,
         s: Settings, **fields) -> dict:
    """The keys every row has, finished or failed: what ran, where, on which data."""
    return {
        "unit": unit_id(spec.name, strategy_name, seed), "task": spec.name,
        "strategy": strategy_name, "seed": seed, "status": "failed", "reason": None,
        "diverged_step": None, "metrics": {}, "metrics_missing": {},
        "settings": {"profile": cfg.profile, "recipe": cfg.recipe, "device": str(device),
                     **_precision(cfg, device),
                     "data_fingerprint": data.fingerprint, "data_seed": cfg.data_seed,
                     "data_source": spec.source, "data_skipped": len(data.skipped),
                     "train_subjects_used": int(data.train.subject.unique().numel()),
                     "pretext_seed": pretext_seed(cfg, seed),
                     "pretext_shared": cfg.pretext_seed is not None, "seeds": cfg.seeds,
                     "image_size": s.image_size, "dims": s.dims,
                     "batch_size": s.batch_size, "steps": s.steps, "harness": s.as_dict(),
                     **spec.record()},
        "versions": versions(), "hardware": hardware(device),
        **fields,
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _precision(cfg: RunConfig, device: torch.device) -> dict:
    chosen = resolve_precision(cfg.precision, device)
    return {"precision": chosen.name, "precision_reason": chosen.reason}


def _failed_row(spec, strategy_name: str, seed: int, cfg: RunConfig, device: torch.device, data,
                s: Settings, reason: str, failure: str, tuned: dict | None,
                draw: dict | None = None) -> dict:
    """`failure`: "pretext" (its pretext diverged in training: the report counts the unit as
    lost) or "error" (anything else, e.g. out of memory: no verdict is given until a rerun, which
    retries every failed unit, finishes it)."""
    return _row(spec, strategy_name, seed, cfg, device, data, s, reason=reason, failure=failure,
                tuned=tuned, draw=draw, metrics_missing={"all": f"the unit failed: {reason}"})


def unit_compute(s: Settings, needs) -> dict:
    """FLOPs a unit of a strategy needing `needs` costs, pretexts included."""
    gan = gan_flops(s, s.steps)
    pretexts = {name: pretext_flops(name, s) for name in needs}
    return {"gan_flops": gan, "pretext_flops": pretexts, "total_flops": gan + sum(pretexts.values())}


def baseline_budgets(s: Settings, names: list[str]) -> dict[str, dict]:
    """Per other strategy of the run: its (pretext + GAN) FLOPs, and the baseline's training
    steps that first reach them (never fewer than the common step budget)."""
    out = {}
    for name in names:
        if name != strategies.BASELINE and strategies.applies(name, s.dims):
            flops = unit_compute(s, strategies.get_strategy(name).needs)["total_flops"]
            out[name] = {"flops": flops, "step": max(s.steps, steps_for(s, flops))}
    return out


def _at_budgets(result: UnitResult, metrics: dict, budgets: dict, s: Settings,
                evaluator: Evaluator) -> dict:
    """The baseline's leading metric and final-sample metrics at each strategy's budget."""
    rows = [r for r in [*result.curve, *result.extension] if "d_acc_real" in r]  # evaluations
    evaluated = {r["step"] for r in rows}
    fids = {r["step"]: r["fid"] for r in rows if r.get("fid") is not None}
    stopped = result.extension_diverged_step
    finals: dict[int, dict] = {}
    out = {}
    for name, budget in budgets.items():
        step = budget["step"]
        entry = {"flops": budget["flops"], "step": step, "gan_flops": gan_flops(s, step)}
        if step not in fids:
            # Diverged before it (or its images were not finite): lost, counted at the worst.
            # Never evaluated there (a checkpoint of a run planned with other budgets): missing.
            lost = (result.status != "ok" or step in evaluated
                    or (stopped is not None and step > stopped))
            out[name] = {**entry, "status": "diverged" if lost else "not evaluated"}
            continue
        if step == s.steps:
            # The step-matched values themselves; the curve's summaries are not final metrics.
            values = {k: v for k, v in metrics.items() if k == "fid_final" or not k.startswith("fid_")}
        else:
            if step not in finals:
                finals[step] = evaluator.final(result.budget_samples[step])[0]
            values = {"fid_final": fids[step], **finals[step]}
        out[name] = {**entry, "status": "ok", **values}
    return out


def _with_flops(curve: list[dict], s: Settings, before: int) -> list[dict]:
    """Curve rows with the cumulative FLOPs at each step, `before` (the pretexts') included."""
    return [{**row, "flops": before + gan_flops(s, row["step"])} for row in curve]


def run_unit(task: Task, strategy_name: str, seed: int, cfg: RunConfig, store: RunStore,
             reference: dict, real_samples: str, tuned: dict | None = None,
             budgets: dict | None = None, draw: dict | None = None) -> dict:
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
    metrics, missing = _metrics(result, evaluator)
    final_seconds = time.perf_counter() - tic
    events = detect_events(result.curve, s, reference["floors"].get("coverage"),
                           result.diverged_step if result.status == "diverged" else None,
                           reference["floors"].get("modes_covered"))
    spent = {n: {"flops": pretext_flops(n, s), "seconds": a.info.get("seconds")}
             for n, a in used.items()}
    pretext_flops_total = sum(p["flops"] for p in spent.values())
    compute = {"gan_flops": gan_flops(s, result.steps), "gan_seconds": round(result.train_seconds, 2),
               "pretexts": spent,
               "evaluation_flops": evaluation_flops(G, s, evaluator, sum(
                   "d_acc_real" in r for r in [*result.curve, *result.extension]))}
    compute["total_flops"] = compute["gan_flops"] + pretext_flops_total
    files = {"curve": store.write_curve(stem, _with_flops(result.curve, s, pretext_flops_total)),
             "extension_curve": None, "samples": None, "samples_nifti": None, "closest": None,
             "real_samples": real_samples}
    at_budgets = None
    if budgets:
        tic = time.perf_counter()
        at_budgets = _at_budgets(result, metrics, budgets, s, evaluator)
        final_seconds += time.perf_counter() - tic
        last = max([s.steps, *(r["step"] for r in result.extension)])
        compute["extension"] = {"steps": last - s.steps,
                                "flops": gan_flops(s, last) - gan_flops(s, s.steps),
                                "seconds": round(result.extension_seconds, 2),
                                "diverged_step": result.extension_diverged_step}
        if result.extension:
            files["extension_curve"] = store.write_curve(
                f"{stem}__extension", _with_flops(result.extension, s, pretext_flops_total))
    if result.samples is not None:
        files.update(store.write_samples(stem, result.samples, s.dims))
        files["closest"] = store.write_closest(stem, result.samples, data.train.t1, s.dims)
    # The final metrics' fixed cost, apart: what remains of `seconds` past training is the
    # evaluations during training and the bookkeeping.
    compute["final_metrics_seconds"] = round(final_seconds, 2)
    return _row(spec, strategy_name, seed, cfg, device, data, s,
                status=result.status, reason=result.reason, diverged_step=result.diverged_step,
                steps=result.steps, train_seconds=round(result.train_seconds, 2),
                seconds=round(time.perf_counter() - start, 2), metrics=metrics,
                resumed_step=result.resumed_step,
                metrics_missing=missing, events=events, reference=reference, transfer=transfer,
                movement=result.movement,
                pretexts=_pretext_summary(used), compute=compute, budgets=at_budgets,
                mode_counts=evaluator.mode_counts(result.samples),
                tuned=tuned, draw=draw, strategy_origin=strategies.strategy_origin(strategy_name),
                files=files)


def _reference(evaluator: Evaluator, s: Settings, device: torch.device, precision: str) -> dict:
    G, _ = build_networks(s, 0)
    z = torch.randn(evaluator.n, s.z_dim, generator=torch.Generator().manual_seed(0))
    return evaluator.reference(evaluator.generate(G.to(device), z, precision))


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
    if cfg.report and (Path(cfg.out) / "launch.json").exists():
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
        from bench.tune import check_tuned, load_tuned
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
        task = prepare_task(variant, settings[variant.spec.name], device, precision,
                            cfg.cache_dir, cfg.data_seed, cfg.progress,
                            data=datas[variant.spec.name])
        s = task.s
        reference = _reference(task.evaluator, s, device, precision)
        real_samples = store.write_real_samples(variant.name, task.evaluator.held_out, s.dims)
        # A stability study compares draws step for step: no compute-matched extension.
        budgets = baseline_budgets(s, cfg.strategies) if drawn is None else None
        for st, seed in sorted(pending, key=lambda unit: unit[1]):  # a seed's pretexts, then the next
            trial = tuned.get((variant.name, st))
            draw = (None if drawn is None else
                    {"index": seed, "seed": cfg.draw_seed, "params": drawn[seed]})
            try:
                row = run_unit(task, st, seed, cfg, store, reference, real_samples, trial,
                               budgets if st == strategies.BASELINE else None, draw)
            except PretextFailed as err:
                row = _failed_row(variant, st, seed, cfg, device, task.data, s, str(err), "pretext",
                                  trial, draw)
            except Exception as err:  # one broken unit or plugin must not sink the others
                if out_of_memory(err):  # every later unit would fail alike: stop, say what to lower
                    raise memory_error(cfg.profile, f"training {variant.name} {st} seed {seed} "
                                       f"on {device}", s) from None
                row = _failed_row(variant, st, seed, cfg, device, task.data, s,
                                  f"{type(err).__name__}: {err}", "error", trial, draw)
            store.append(row)
            bar.update(1)
    bar.close()
    return store.root
