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
import json
import logging
import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import submitit
from submitit.helpers import Checkpointable
from tqdm.auto import tqdm

from ground.atomic import write_atomic
from ground.errors import BenchError

LAUNCHERS = ("local", "slurm")
POLL_SECONDS = 5
# A SLURM job that has left the queue without writing its result has died (node failure,
# scancel): after this many polls without it (two minutes, longer than a shared file system
# takes to show a finished job's result file) the launcher says so instead of waiting forever.
GONE_POLLS = 24
RECORD = "launch.json"  # in the run directory: the workers and jobs of the last launch


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


# sbatch options the launcher sets itself (submitit's log paths, the array, the requeue
# signal, the dependency on the prepare job) or has its own flag for.
RESERVED = {"array", "output", "error", "signal", "open_mode", "dependency", "job_name",
            "time", "partition", "mem", "gpus_per_node", "wckey", "kill_on_invalid_dep"}


def parse_options(values: list[str]) -> dict[str, str]:
    """--slurm-option KEY=VALUE, repeated -> {KEY: VALUE}."""
    out = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not re.fullmatch(r"[a-z][a-z0-9-]*", key):
            raise BenchError(f"--slurm-option {value!r}: expected KEY=VALUE with an sbatch long "
                             "option as KEY, e.g. account=myproject or qos=high")
        key = key.replace("-", "_")
        if key in RESERVED:
            raise BenchError(f"--slurm-option {value!r}: the launcher sets --{key.replace('_', '-')} "
                             "itself (or has its own --slurm-* flag for it)")
        out[key] = text
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


class _NoSacct(logging.Filter):
    """submitit polls `sacct` for states; without SLURM accounting every poll logs a warning
    that says nothing to a user (the launcher waits on result files and `squeue` instead)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "sacct" not in record.getMessage()


def _quiet_submitit() -> None:
    logger = logging.getLogger("submitit")
    if not any(isinstance(f, _NoSacct) for f in logger.filters):
        logger.addFilter(_NoSacct())


def _setup(plugins: list[str], threads: int | None) -> None:
    import torch

    from bench.plugins import load_plugins
    if threads:
        torch.set_num_threads(threads)
    load_plugins(plugins)


class Prepare(Checkpointable):
    """The first job: the task data, the domain encoders, and the pretexts of the pretext seeds
    in `seeds`, into the cache. Requeued after a time limit, it carries on from the cache."""

    def __call__(self, cfg, plugins: list[str], seeds: list[int], against: str) -> str:
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
        return "done"


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
        from bench.tuning.tune import tune
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


def _local_gpus() -> list[int]:
    """The GPUs this process may use, as indices a child's CUDA_VISIBLE_DEVICES takes."""
    import torch
    count = torch.cuda.device_count()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return list(range(count))
    ids = [v.strip() for v in visible.split(",") if v.strip()][:count]
    if not all(v.isdigit() for v in ids):
        raise BenchError("--launcher local: CUDA_VISIBLE_DEVICES must list GPU indices (not "
                         "UUIDs) for the workers to get one each")
    return [int(v) for v in ids]


def _failure(job, what: str, error: BaseException | None) -> BenchError:
    """A failed job as one line: its last error line and where its log is."""
    if error is None:  # no result file to read: asking submitit would wait on it
        detail = "it left the queue without a result (cancelled, or its node died)"
        last = _last_state(job.job_id)
        if last:
            detail += f"; SLURM last said {last}"
    else:  # submitit's FailedJobError holds the job's traceback
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        errors = [line for line in lines if re.match(r"[\w.]*(Error|Exception)\b", line)]
        detail = (errors or lines or [type(error).__name__])[-1]
    return BenchError(f"{what} (job {job.job_id}) failed: {detail}; its log: "
                      f"{job.paths.stderr}")


def _last_state(job_id: str) -> str:
    """What the controller still holds of a finished job (its state, reason and exit code, for
    MinJobAge after the end), or "" once it has forgotten it."""
    try:
        shown = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True,
                               text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    fields = dict(re.findall(r"\b(JobState|Reason|ExitCode|Restarts)=(\S+)", shown))
    return " ".join(f"{k}={v}" for k, v in fields.items())


def _in_queue(job_id: str) -> bool | None:
    """Whether SLURM still holds the job; None when `squeue` could not say."""
    try:
        done = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True,
                              text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        # A job long gone is "Invalid job id"; a busy controller says nothing certain.
        return False if "Invalid job id" in done.stderr else None
    return bool(done.stdout.strip())


def _finished(job, kind: str) -> bool:
    try:  # a listing refreshes a network file system's view of the folder
        os.listdir(job.paths.folder)
    except OSError:
        pass
    return job.paths.result_pickle.exists() or (kind == "local" and job.done())


def _wait(jobs: list, what: list[str], launch: Launch, progress=None) -> None:
    """Until every job has its result; the first failure becomes a BenchError."""
    pending = dict(zip([j.job_id for j in jobs], zip(jobs, what)))
    gone: dict[str, int] = {}
    while pending:
        for job_id, (job, label) in list(pending.items()):
            if _finished(job, launch.kind):
                error = job.exception()
                if error is not None:
                    raise _failure(job, label, error)
                del pending[job_id]
            elif launch.kind == "slurm":
                queued = _in_queue(job_id)
                gone[job_id] = 0 if queued in (True, None) else gone.get(job_id, 0) + 1
                if gone[job_id] >= GONE_POLLS:
                    raise _failure(job, label, None)
        if progress is not None:
            progress()
        if pending:
            time.sleep(POLL_SECONDS)


def _rows(out: Path) -> int:
    path = out / "results.jsonl"
    try:
        with path.open() as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return 0


def _cancel(jobs: list) -> None:
    for job in jobs:
        try:
            job.cancel(check=False)
        except Exception:  # already gone: nothing to cancel
            pass


def _alive(record: dict) -> list[str]:
    """The jobs of an earlier launch that still run or wait."""
    ids = [record.get("prepare"), *record.get("workers", [])]
    if record.get("kind") == "slurm":
        return [i for i in ids if i and _in_queue(i) is not False]
    alive = []
    for i in filter(None, ids):  # a local job's id is its controller's process id
        try:
            os.kill(int(i), 0)
            alive.append(i)
        except (OSError, ValueError):
            pass
    return alive


def _check_record(out: Path, launch: Launch, n: int | None) -> int | None:
    """The worker count of an earlier launch into `out` (its shards fix it), after refusing
    to start while that launch's jobs still write there."""
    path = out / RECORD
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    alive = _alive(record)
    if alive:
        cancel = "scancel" if record.get("kind") == "slurm" else "kill"
        raise BenchError(f"{out}: jobs {', '.join(alive)} of an earlier launch still run; wait "
                         f"for them (or `{cancel} {' '.join(alive)}`), then rerun to resume")
    if n is not None and n != record["n"]:
        raise BenchError(f"{out} was launched with --workers {record['n']}, whose shards hold "
                         f"its units; rerun with --workers {record['n']}, or use a new --out")
    return record["n"]


def _submit(launch: Launch, cfg, plugins: list[str], seeds: list[int], against: str,
            worker, calls: list[tuple]) -> tuple:
    """The prepare job, then one worker job per call (a SLURM array that starts after it)."""
    logs = cfg.out / "logs"
    _quiet_submitit()
    gpus = _local_gpus() if launch.kind == "local" else []
    ex = _executor(launch, logs, "bench-prepare")
    if gpus:
        ex.update_parameters(gpus_per_node=1, visible_gpus=(gpus[0],))
    prep = ex.submit(Prepare(), dataclasses.replace(cfg, progress=False), plugins, seeds, against)
    print(f"prepare job {prep.job_id}: data, domain encoders and shared pretexts into "
          f"{cfg.cache_dir}", flush=True)
    workers: list = []
    record = {"kind": launch.kind, "n": len(calls), "prepare": prep.job_id, "workers": []}
    write_atomic(cfg.out / RECORD, json.dumps(record, indent=1))  # known at once to a rerun
    try:
        if launch.kind == "local":
            _wait([prep], ["the prepare job"], launch)
            for k, args in enumerate(calls):
                wx = _executor(launch, logs, f"bench-{k}")
                if gpus:  # one GPU each, round robin
                    wx.update_parameters(gpus_per_node=1, visible_gpus=(gpus[k % len(gpus)],))
                workers.append(wx.submit(worker, *args))
        else:
            ex = _executor(launch, logs, "bench-work")
            params = slurm_parameters(launch, "bench-work")["additional_parameters"]
            # A failed prepare job leaves nothing to wait for: SLURM drops the array.
            ex.update_parameters(dependency=f"afterok:{prep.job_id}",
                                 additional_parameters={**params, "kill_on_invalid_dep": "yes"})
            workers = ex.map_array(worker, *zip(*calls))
    except BaseException:
        _cancel([prep, *workers])
        raise
    finally:
        record["workers"] = [j.job_id for j in workers]
        write_atomic(cfg.out / RECORD, json.dumps(record, indent=1))
    print(f"{len(workers)} worker(s): {', '.join(j.job_id for j in workers)}; logs in {logs}",
          flush=True)
    return prep, workers


def _wait_all(launch: Launch, prep, workers: list, progress=None) -> None:
    """Wait for the prepare job (SLURM) and the workers; on a failure or an interrupt, cancel
    what still runs, so that a rerun never shares a shard with a leftover worker."""
    try:
        if launch.kind == "slurm":
            _wait([prep], ["the prepare job"], launch)
        _wait(workers, [f"worker {k}" for k in range(len(workers))], launch, progress)
    except BaseException:
        _cancel([prep, *workers])
        raise


def _resolved(cfg):
    """Absolute paths: a worker may start elsewhere; plugin files likewise."""
    return dataclasses.replace(cfg, out=Path(cfg.out).resolve(),
                               cache_dir=Path(cfg.cache_dir).resolve())


def _plugins(plugins: list[str]) -> list[str]:
    return [str(Path(p).resolve()) if Path(p).exists() else p for p in plugins]


def _check_device(cfg, launch: Launch):
    """The device as the workers will see it: a GPU is theirs, not the login node's."""
    if cfg.device.startswith("cuda:"):
        raise BenchError(f"--device {cfg.device} with --launcher: each worker gets its own GPU; "
                         "give --device cuda or auto")
    return dataclasses.replace(cfg, device="cpu") if launch.kind == "slurm" else cfg


def launch_run(cfg, launch: Launch, plugins: list[str]) -> list[Path] | None:
    """Run `cfg` (a run or a stability study) through the launcher: the shards' run directories
    once every worker is done (the CLI reports them, merged), or None with --no-wait."""
    from bench.run import check_plan
    from bench.unit import pretext_seed
    cfg = _resolved(cfg)
    if (cfg.out / "results.jsonl").exists():
        raise BenchError(f"{cfg.out} holds a run of one process; launch into a new --out, or "
                         "rerun it without --launcher")
    # Checked before anything is submitted: the same one-line errors as a one-process run.
    groups, units = check_plan(_check_device(cfg, launch))
    if launch.workers is not None and launch.workers < 1:
        raise BenchError(f"--workers {launch.workers}: need at least 1")
    n = _check_record(cfg.out, launch, launch.workers) or launch.workers
    if n is None:  # SLURM: one task per group; this host: one worker per GPU, else per core
        n = len(groups) if launch.kind == "slurm" else min(
            len(groups), len(_local_gpus()) or os.cpu_count() or 1)
    if not 1 <= n <= len(groups):
        raise BenchError(f"--workers {n}: the plan has {len(groups)} (task, seed) groups; use 1 "
                         f"to {len(groups)}")
    threads = cfg.threads
    if launch.kind == "local" and threads is None:  # share this host's cores, not oversubscribe
        threads = max(1, (os.cpu_count() or 1) // n)
    cfg.out.mkdir(parents=True, exist_ok=True)
    plugins = _plugins(plugins)
    shards = [dataclasses.replace(cfg, shard=(k, n), out=cfg.out / "shards" / str(k),
                                  progress=False, worker=True, threads=threads)
              for k in range(n)]
    # Each (task, seed) group, and so each pretext seed's pretexts, belongs to one worker,
    # which trains them in parallel with the others; a pretext seed shared by several workers
    # (`--pretext-seed`, a stability study) is trained once, by the prepare job.
    owners: dict[tuple[str, int], set[int]] = {}
    for g, (task, seed) in enumerate(groups):
        owners.setdefault((task, pretext_seed(cfg, seed)), set()).add(g % n)
    shared = sorted({seed for (_, seed), ks in owners.items() if len(ks) > 1})
    prep, workers = _submit(launch, cfg, plugins, shared, "test", Worker(),
                            [(shard, plugins) for shard in shards])
    out = shlex.quote(str(cfg.out))
    if not launch.wait:
        print(f"when they are done: bench report {out}/shards/* --out {out}")
        return None
    bar = tqdm(total=units, desc="units", unit="unit", disable=not cfg.progress)
    try:
        _wait_all(launch, prep, workers,
                  lambda: bar.update(sum(_rows(s.out) for s in shards) - bar.n))
    finally:
        bar.close()
    return [s.out for s in shards]


def launch_tune(cfg, launch: Launch, plugins: list[str]) -> bool:
    """`bench tune` in `launch.workers` workers on one storage; True once they are done (the
    caller then reads the finished studies), False with --no-wait."""
    from bench.tuning.tune import check_config, storage_url
    cfg = _resolved(cfg)
    check_config(_check_device(cfg, launch))  # before anything is submitted
    n = 1 if launch.workers is None else launch.workers
    if n < 1:
        raise BenchError(f"--workers {n}: need at least 1")
    url = storage_url(cfg)
    if launch.kind == "slurm" and url.startswith("sqlite"):
        # SQLite's file lock is not reliable across machines' shared file systems.
        print("note: SLURM workers on several nodes should share a PostgreSQL --storage; "
              "SQLite is safe on one node only", flush=True)
    _check_record(cfg.out, launch, None)
    cfg.out.mkdir(parents=True, exist_ok=True)
    cfg = dataclasses.replace(cfg, storage=url, progress=False)
    plugins = _plugins(plugins)
    prep, workers = _submit(launch, cfg, plugins, [cfg.pretext_seed], "val", TuneWorker(),
                            [(cfg, plugins)] * n)
    if not launch.wait:
        print(f"when they are done: optuna-dashboard {url} shows the studies, and "
              f"`bench run --tuned {url}` uses them")
        return False
    _wait_all(launch, prep, workers)
    return True
