"""`--launcher local|slurm`: a run (or stability study) split over worker processes or SLURM
array tasks through submitit, merged into one report.

    prepare job:  data, domain encoders and every pretext the plan needs, into the shared cache
    worker k:     `--shard k/N` of the plan into RUN_DIR/shards/k (after the prepare job)
    launcher:     waits, then writes RUN_DIR/report.md from every shard (or, with --no-wait,
                  prints the job ids and the command that does)

A worker is a run like any other: it resumes from its finished rows and its units' evaluation
checkpoints. Under SLURM, submitit requeues a task that is preempted or reaches its time limit
(SIGUSR2 before the end) and the requeued task resumes the same way.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import submitit
from submitit.helpers import Checkpointable
from tqdm.auto import tqdm

from bench.errors import BenchError

LAUNCHERS = ("local", "slurm")
POLL_SECONDS = 5
# A SLURM job that has left the queue without writing its result has died (node failure,
# scancel): after this many polls without it the launcher says so instead of waiting forever.
GONE_POLLS = 3


@dataclass
class Launch:
    kind: str  # "local" or "slurm"
    workers: int | None = None  # None: one per (task, seed) group of the plan
    wait: bool = True
    partition: str | None = None
    gpus: int = 0  # per worker
    time: str | None = None  # minutes, HH:MM:SS or D-HH:MM:SS
    mem: str | None = None
    array_parallelism: int | None = None
    options: dict[str, str] = field(default_factory=dict)  # any other sbatch option


def parse_options(values: list[str]) -> dict[str, str]:
    """--slurm-option KEY=VALUE, repeated -> {KEY: VALUE}."""
    out = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not re.fullmatch(r"[a-z][a-z0-9-]*", key):
            raise BenchError(f"--slurm-option {value!r}: expected KEY=VALUE with an sbatch long "
                             "option as KEY, e.g. account=myproject or qos=high")
        out[key.replace("-", "_")] = text
    return out


def minutes(text: str) -> int:
    """SLURM's time formats (M, M:S, H:M:S, D-H, D-H:M, D-H:M:S) -> whole minutes, at least 1."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+(?::\d+){0,2})", text.strip())
    if not m:
        raise BenchError(f"--slurm-time {text!r}: give minutes (240), HH:MM:SS or D-HH:MM:SS")
    parts = [int(p) for p in m[2].split(":")]
    if m[1] is None:  # M, M:S or H:M:S
        weights = {1: (60,), 2: (60, 1), 3: (3600, 60, 1)}[len(parts)]
        seconds = sum(p * w for p, w in zip(parts, weights))
    else:
        hours, mins, secs = (parts + [0, 0])[:3]
        seconds = int(m[1]) * 86400 + hours * 3600 + mins * 60 + secs
    return max(1, -(-seconds // 60))


def slurm_parameters(launch: Launch, name: str) -> dict:
    """The submitit SlurmExecutor parameters (each an #SBATCH line) of a launch."""
    params = {"job_name": name, "time": minutes(launch.time or "24:00:00"),
              "signal_delay_s": 120, "additional_parameters": dict(launch.options)}
    if launch.partition:
        params["partition"] = launch.partition
    if launch.gpus:
        params["gpus_per_node"] = launch.gpus
    if launch.mem:
        params["mem"] = launch.mem
    if launch.array_parallelism:
        params["array_parallelism"] = launch.array_parallelism
    return params


def _quiet_submitit() -> None:
    """submitit polls `sacct` for states; without SLURM accounting every poll logs a warning
    that says nothing to a user (the launcher waits on result files and `squeue` instead)."""
    class NoSacct(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "sacct" not in record.getMessage()

    logger = logging.getLogger("submitit")
    if not any(isinstance(f, NoSacct) for f in logger.filters):
        logger.addFilter(NoSacct())


def _setup(plugins: list[str], threads: int | None) -> None:
    import torch

    import strategies
    if threads:
        torch.set_num_threads(threads)
    strategies.load_plugins(plugins)


def prepare(cfg, plugins: list[str], seeds: list[int], against: str = "test") -> None:
    """Everything the workers share and would otherwise each train: the task data, the domain
    encoders and the pretexts of every pretext seed in `seeds`, into the cache."""
    _setup(plugins, getattr(cfg, "threads", None))
    import strategies
    from bench.unit import PretextFailed, check_inputs, prepare_task, task_data
    from bench.variants import plan_variants
    device, specs, settings = check_inputs(cfg)
    datas = {spec.name: task_data(spec, settings[spec.name], cfg.cache_dir, cfg.data_seed,
                                  cfg.progress) for spec in specs}
    for variant in plan_variants(specs, cfg.train_subjects, cfg.pretext_scales):
        task = prepare_task(variant, settings[variant.spec.name], device, cfg.precision,
                            cfg.cache_dir, cfg.data_seed, cfg.progress, against=against,
                            inception=False, data=datas[variant.spec.name])
        needs = sorted({n for st in cfg.strategies if strategies.applies(st, variant.dims)
                        for n in strategies.get_strategy(st).needs})
        for seed in seeds:
            for name in needs:
                try:
                    task.pretexts.get([name], seed)
                except PretextFailed:
                    pass  # its units fail with the reason, as in a one-process run


class Worker(Checkpointable):
    """One worker's share of the plan. Requeued after preemption or a time limit (submitit's
    checkpoint: the same call again), it resumes from its rows and checkpoints."""

    def __call__(self, cfg, plugins: list[str]) -> str:
        _setup(plugins, cfg.threads)
        from bench.run import run
        return str(run(cfg))


class TuneWorker(Checkpointable):
    """One `bench tune` worker on the shared storage: it claims trials until every study has
    its budget; a requeued one carries on, and a dead one's trials are run again by the others."""

    def __call__(self, cfg, plugins: list[str]) -> str:
        _setup(plugins, None)
        from bench.tune import tune
        tune(cfg)
        return "done"


def _executor(launch: Launch, folder: Path, name: str):
    if launch.kind == "slurm":
        ex = submitit.SlurmExecutor(folder=str(folder / "%j"), max_num_timeout=10)
        ex.update_parameters(**slurm_parameters(launch, name))
        return ex
    ex = submitit.LocalExecutor(folder=str(folder / "%j"))
    ex.update_parameters(timeout_min=60 * 24 * 365)  # local workers have no time limit
    return ex


def _gpus() -> int:
    import torch
    return torch.cuda.device_count()


def _failure(job, what: str, gone: bool = False) -> BenchError:
    """A failed job as one line: its last error line and where its log is."""
    try:
        if gone:  # no result file to read: asking submitit would wait on it
            raise RuntimeError("it left the queue without a result (cancelled, or its node died)")
        job.result()
        detail = "it ended without a result"
    except Exception as err:  # submitit's FailedJobError holds the job's traceback
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        errors = [line for line in lines if re.match(r"[\w.]*(Error|Exception)\b", line)]
        detail = (errors or lines or [type(err).__name__])[-1]
    return BenchError(f"{what} (job {job.job_id}) failed: {detail}; its log: "
                      f"{job.paths.stderr}")


def _in_queue(job_id: str) -> bool:
    done = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True,
                          text=True)
    return done.returncode == 0 and bool(done.stdout.strip())


def _wait(jobs: list, what: list[str], launch: Launch, progress=None) -> None:
    """Until every job has its result; the first failure becomes a BenchError."""
    pending = dict(zip([j.job_id for j in jobs], zip(jobs, what)))
    gone: dict[str, int] = {}
    while pending:
        for job_id, (job, label) in list(pending.items()):
            if job.paths.result_pickle.exists() or (launch.kind == "local" and job.done()):
                if not _succeeded(job):
                    raise _failure(job, label)
                del pending[job_id]
            elif launch.kind == "slurm":
                gone[job_id] = 0 if _in_queue(job_id) else gone.get(job_id, 0) + 1
                if gone[job_id] >= GONE_POLLS:
                    raise _failure(job, label, gone=True)
        if progress is not None:
            progress()
        if pending:
            time.sleep(POLL_SECONDS)


def _succeeded(job) -> bool:
    try:
        job.result()
    except Exception:
        return False
    return True


def _rows(out: Path) -> int:
    path = out / "results.jsonl"
    try:
        with path.open() as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return 0


def _submit(launch: Launch, cfg, plugins: list[str], seeds: list[int], against: str,
            worker, calls: list[tuple]) -> tuple:
    """The prepare job, then one worker job per call (a SLURM array after it)."""
    logs = cfg.out / "logs"
    _quiet_submitit()
    ex = _executor(launch, logs, "bench-prepare")
    if launch.kind == "local" and _gpus():
        ex.update_parameters(gpus_per_node=1, visible_gpus=(0,))
    prep = ex.submit(prepare, dataclasses.replace(cfg, progress=False), plugins, seeds, against)
    print(f"prepare job {prep.job_id}: data, domain encoders and pretexts into {cfg.cache_dir}",
          flush=True)
    if launch.kind == "local":
        _wait([prep], ["the prepare job"], launch)
        workers = []
        for k, args in enumerate(calls):
            wx = _executor(launch, logs, f"bench-{k}")
            if _gpus():  # one GPU each, round robin
                wx.update_parameters(gpus_per_node=1, visible_gpus=(k % _gpus(),))
            workers.append(wx.submit(worker, *args))
    else:
        ex = _executor(launch, logs, "bench-work")
        ex.update_parameters(dependency=f"afterok:{prep.job_id}")
        workers = ex.map_array(worker, *zip(*calls))
    print(f"{len(workers)} worker(s): {', '.join(j.job_id for j in workers)}; logs in {logs}",
          flush=True)
    return prep, workers


def _plugins(plugins: list[str]) -> list[str]:
    """Plugin files as absolute paths: workers may start in another directory."""
    return [str(Path(p).resolve()) if Path(p).exists() else p for p in plugins]


def launch_run(cfg, launch: Launch, plugins: list[str]) -> Path | None:
    """Run `cfg` (a run or a stability study) through the launcher: the merged report's path,
    or None with --no-wait."""
    from bench.run import check_plan, pretext_seed
    # Checked here, before anything is submitted (a GPU is the workers' business, not the
    # login node's): the same one-line errors as a one-process run.
    groups, units = check_plan(dataclasses.replace(cfg, device="cpu")
                               if launch.kind == "slurm" else cfg)
    n = launch.workers or groups
    if not 1 <= n <= groups:
        raise BenchError(f"--workers {n}: the plan has {groups} (task, seed) groups; use 1 to "
                         f"{groups}")
    cfg.out.mkdir(parents=True, exist_ok=True)
    plugins = _plugins(plugins)
    shards = [dataclasses.replace(cfg, shard=(k, n), out=cfg.out / "shards" / str(k),
                                  progress=False, report=False) for k in range(n)]
    seeds = sorted({pretext_seed(cfg, k) for k in range(cfg.seeds)})
    prep, workers = _submit(launch, cfg, plugins, seeds, "test", Worker(),
                            [(shard, plugins) for shard in shards])
    out = shlex.quote(str(cfg.out))
    if not launch.wait:
        print(f"when they are done: bench report {out}/shards/* --out {out}")
        return None
    bar = tqdm(total=units, desc="units", unit="unit", disable=not cfg.progress)
    try:
        if launch.kind == "slurm":
            _wait([prep], ["the prepare job"], launch)
        _wait(workers, [f"worker {k}" for k in range(n)], launch,
              lambda: bar.update(sum(_rows(s.out) for s in shards) - bar.n))
    finally:
        bar.close()
    from reports import write_report
    return write_report([s.out for s in shards], cfg.out)["report"]


def launch_tune(cfg, launch: Launch, plugins: list[str]) -> bool:
    """`bench tune` in `launch.workers` workers on one storage; True once they are done (the
    caller then reads the finished studies), False with --no-wait."""
    from bench.tune import storage_url
    n = launch.workers or 1
    if n < 1:
        raise BenchError(f"--workers {n}: need at least 1")
    url = storage_url(cfg)
    if launch.kind == "slurm" and url.startswith("sqlite"):
        # SQLite's file lock is not reliable across machines' shared file systems.
        print("note: SLURM workers on several nodes should share a PostgreSQL --storage; "
              "SQLite is safe on one node only", flush=True)
    cfg.out.mkdir(parents=True, exist_ok=True)
    cfg = dataclasses.replace(cfg, storage=url, progress=False)
    plugins = _plugins(plugins)
    prep, workers = _submit(launch, cfg, plugins, [cfg.pretext_seed], "val", TuneWorker(),
                            [(cfg, plugins)] * n)
    if not launch.wait:
        print("when they are done, the same command without --launcher prints the studies")
        return False
    if launch.kind == "slurm":
        _wait([prep], ["the prepare job"], launch)
    _wait(workers, [f"tune worker {k}" for k in range(n)], launch)
    return True
