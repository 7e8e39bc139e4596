"""--launcher local and slurm: the plan split over workers gives the rows of one process; SLURM
options become #SBATCH lines; a requeued SLURM task resumes from its checkpoint. The SLURM test
starts munged, slurmctld and slurmd for one node on localhost (skipped, saying why, without
them)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from submitit.slurm.slurm import _make_sbatch_string

from bench import launch as launch_module
from bench.launch import Launch, minutes, parse_options, slurm_parameters
from ground.errors import BenchError

REPO = Path(__file__).resolve().parents[1]
SMOKE = ["--task", "phantom-2d", "--profile", "smoke", "--precision", "fp32", "--threads", "1",
         "--device", "cpu", "--no-progress"]
# A plugin strategy that trains like `scratch` but slowly, so a SLURM task can be requeued
# in the middle of one of its units.
SLOW_PLUGIN = '''
import time
from strategies import Strategy, register_strategy, transfer_report

@register_strategy("slow-scratch")
class SlowScratch(Strategy):
    description = "scratch, 0.5 s per generator call"

    def initialize(self, G, D, pretexts):
        G.register_forward_pre_hook(lambda module, args: time.sleep(0.5))
        return transfer_report()
'''


def _bench(*args, env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=timeout)


def _rows(paths) -> dict[str, dict]:
    rows = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            row = json.loads(line)
            assert row["unit"] not in rows, f"{row['unit']} twice"
            rows[row["unit"]] = row
    return rows


def _same_results(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for unit in a:
        assert a[unit]["status"] == b[unit]["status"] == "ok"
        assert a[unit]["metrics"] == b[unit]["metrics"], unit
        assert a[unit]["steps"] == b[unit]["steps"]


def test_slurm_options_become_sbatch_directives(tmp_path):
    launch = Launch("slurm", partition="gpu", gpus=1, time="1-02:30:00", mem="32G",
                    array_parallelism=4, options=parse_options(["account=proj", "qos=high",
                                                                "cpus-per-task=8"]))
    params = slurm_parameters(launch, "bench-work")
    text = _make_sbatch_string(command="python -m x", folder=tmp_path, map_count=10, **params)
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --time=1590",
                 "#SBATCH --mem=32G", "#SBATCH --array=0-9%4", "#SBATCH --account=proj",
                 "#SBATCH --qos=high", "#SBATCH --cpus-per-task=8", "#SBATCH --signal=USR2@120",
                 "#SBATCH --job-name=bench-work"):
        assert line in text.splitlines(), line
    assert minutes("240") == 240 and minutes("04:00:00") == 240 and minutes("2-00") == 2880
    for bad in (["account"], ["Bad Key=1"]):
        with pytest.raises(BenchError, match="KEY=VALUE"):
            parse_options(bad)
    with pytest.raises(BenchError, match="sets --array itself"):
        parse_options(["array=0-3"])
    with pytest.raises(BenchError, match="--slurm-time"):
        minutes("tomorrow")


def test_a_job_gone_from_the_queue_is_reported_with_what_slurm_last_said(tmp_path, monkeypatch):
    # A stand-in `scontrol` holding a finished job's record, as the controller does for a while.
    scontrol = tmp_path / "scontrol"
    scontrol.write_text("#!/bin/sh\n[ \"$3\" = 7_1 ] || exit 1\necho 'JobId=8 ArrayJobId=7 "
                        "JobName=bench-work'\necho '   JobState=CANCELLED "
                        "Reason=DependencyNeverSatisfied Dependency=(null)'\necho '   Requeue=1 "
                        "Restarts=1 BatchFlag=1 Reboot=0 ExitCode=0:15'\n")
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")

    class Job:
        job_id = "7_1"
        paths = type("Paths", (), {"stderr": tmp_path / "7_1_0_log.err"})

    message = str(launch_module._failure(Job(), "worker 1", None))
    assert "left the queue without a result" in message
    assert ("SLURM last said JobState=CANCELLED Reason=DependencyNeverSatisfied Restarts=1 "
            "ExitCode=0:15") in message
    assert "7_1_0_log.err" in message and "\n" not in message
    Job.job_id = "9_0"  # a job the controller has forgotten: the line says only what is known
    assert "SLURM last said" not in str(launch_module._failure(Job(), "worker 0", None))


def test_launcher_options_without_a_launcher_exit_2(tmp_path, run_env):
    done = _bench("run", "--workers", "2", *SMOKE, "--out", str(tmp_path / "r"),
                  env={"BENCH_CACHE": str(run_env)})
    assert done.returncode == 2 and "need --launcher" in done.stderr
    assert done.stderr.count("\n") == 1 and not (tmp_path / "r").exists()
    too_many = _bench("run", "--launcher", "local", "--workers", "5", "--seeds", "2",
                      "--strategy", "scratch", *SMOKE, "--out", str(tmp_path / "r"),
                      env={"BENCH_CACHE": str(run_env)})
    assert too_many.returncode == 2 and "the plan has 2 (task, seed) groups" in too_many.stderr
    assert too_many.stderr.count("\n") == 1 and not (tmp_path / "r").exists()
    zero = _bench("run", "--launcher", "local", "--workers", "0", *SMOKE, "--out",
                  str(tmp_path / "r"), env={"BENCH_CACHE": str(run_env)})
    assert zero.returncode == 2 and "--workers 0: need at least 1" in zero.stderr


def test_one_process_and_launched_runs_do_not_share_a_directory(tmp_path, run_env):
    env = {"BENCH_CACHE": str(run_env)}
    launched = tmp_path / "launched"
    launched.mkdir()
    (launched / "launch.json").write_text(json.dumps({"kind": "local", "n": 1, "prepare": None,
                                                      "workers": []}))
    done = _bench("run", "--strategy", "scratch", "--seeds", "1", *SMOKE, "--out", str(launched),
                  env=env)
    assert done.returncode == 2 and "holds a launched run" in done.stderr
    one = tmp_path / "one"
    one.mkdir()
    (one / "results.jsonl").write_text("")
    done = _bench("run", "--launcher", "local", "--strategy", "scratch", "--seeds", "1", *SMOKE,
                  "--out", str(one), env=env)
    assert done.returncode == 2 and "holds a run of one process" in done.stderr


@pytest.mark.slow
def test_a_failing_worker_is_one_line_with_its_log_and_nothing_keeps_running(tmp_path, run_env):
    plugin = tmp_path / "broken_in_workers.py"
    plugin.write_text(SLOW_PLUGIN + "\nimport os\nif os.environ.get('SUBMITIT_EXECUTOR'):\n"
                      "    raise RuntimeError('this plugin fails in workers')\n")
    out = tmp_path / "run"
    done = _bench("run", "--launcher", "local", "--workers", "1", "--plugin", str(plugin),
                  "--strategy", "scratch", "--seeds", "1", *SMOKE, "--out", str(out),
                  env={"BENCH_CACHE": str(run_env)})
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "the prepare job" in done.stderr and "this plugin fails in workers" in done.stderr
    log = done.stderr.rsplit("its log: ", 1)[1].strip()
    assert Path(log).is_file() and "this plugin fails in workers" in Path(log).read_text()
    record = json.loads((out / "launch.json").read_text())
    assert record["workers"] == []  # the workers were never started after the prepare job failed


@pytest.mark.slow
def test_two_local_workers_give_the_rows_of_one_process(tmp_path, run_env):
    env = {"BENCH_CACHE": str(run_env)}
    plan = ["--strategy", "scratch,cyclegan-t2t1", "--seeds", "2", *SMOKE]
    launched = _bench("run", "--launcher", "local", "--workers", "2", *plan,
                      "--out", str(tmp_path / "launched"), env=env)
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert "2 worker(s)" in launched.stdout
    one = _bench("run", *plan, "--out", str(tmp_path / "one"), env=env)
    assert one.returncode == 0, one.stderr[-3000:]
    shards = sorted((tmp_path / "launched" / "shards").glob("*/results.jsonl"))
    assert len(shards) == 2
    _same_results(_rows(shards), _rows([tmp_path / "one" / "results.jsonl"]))
    merged = (tmp_path / "launched" / "results.csv").read_text().splitlines()
    assert len(merged) == 1 + 4  # the merged report holds every worker's units
    assert (tmp_path / "launched" / "report.md").is_file()


# --- a real SLURM on localhost ---------------------------------------------------------------

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "squeue")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _missing() -> str | None:
    absent = [d for d in DAEMONS if shutil.which(d) is None and not Path(f"/usr/sbin/{d}").exists()]
    if absent:
        return (f"SLURM not installed ({', '.join(absent)} missing): apt-get install slurm-wlm "
                "munge (.ci/run does)")
    if os.geteuid() != 0:
        return "slurmd needs root to start jobs as their user"
    return None


def _sbin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A one-node SLURM (and munge) on localhost with a throwaway configuration: {SLURM_CONF}."""
    why = _missing()
    if why:
        pytest.skip(why)
    root = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool", "log", "munge"):
        (root / sub).mkdir()
    (root / "munge").chmod(0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    sock = root / "munge" / "munge.socket"
    subprocess.run([_sbin("munged"), "--force", f"--socket={sock}", f"--key-file={key}",
                    f"--log-file={root / 'log' / 'munged.log'}",
                    f"--pid-file={root / 'munge' / 'munged.pid'}",
                    f"--seed-file={root / 'munge' / 'seed'}"], check=True)
    host = socket.gethostname()
    conf = root / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=benchtest", f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
        "AuthType=auth/munge", f"AuthInfo=socket={sock}", "CredType=cred/munge",
        "SlurmUser=root", "SlurmdUser=root", f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}", f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd.pid'}", f"SlurmctldLogFile={root / 'log' / 'ctld.log'}",
        f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
        # No cgroups, accounting or job completion store: what a container allows.
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none", "SchedulerType=sched/backfill", "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU", "MpiDefault=none", "ReturnToService=2", "JobRequeue=1",
        "SwitchType=switch/none",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} State=UNKNOWN",
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP", ""]))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    subprocess.run([_sbin("slurmctld")], env=env, check=True)
    subprocess.run([_sbin("slurmd")], env=env, check=True)
    try:
        for _ in range(60):
            state = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True,
                                   text=True).stdout.strip()
            if state == "idle":
                break
            time.sleep(1)
        else:
            pytest.skip(f"the test SLURM node did not come up (state {state!r}); see {root / 'log'}")
        yield {"SLURM_CONF": str(conf)}
    finally:
        subprocess.run(["scontrol", "shutdown"], env=env, capture_output=True)
        pid = root / "munge" / "munged.pid"
        if pid.exists():
            subprocess.run(["kill", pid.read_text().strip()], capture_output=True)


def _checkpoint_step(path: Path) -> int:
    """The step of a unit's evaluation checkpoint (-1 before the first); written atomically."""
    try:
        return int(torch.load(path, weights_only=False)["step"])
    except (OSError, EOFError, RuntimeError, KeyError):
        return -1


def _array_task(logs: Path, worker: int) -> str:
    """The SLURM id (ARRAY_TASK) of worker `worker`, from its log folder."""
    for _ in range(600):
        found = [p.name for p in logs.glob(f"*_{worker}") if p.is_dir()]
        if found:
            return found[0]
        time.sleep(0.5)
    raise AssertionError(f"no log folder of worker {worker} under {logs}")


@pytest.mark.slow
def test_a_requeued_slurm_task_resumes_from_its_checkpoint(slurm, tmp_path, run_env):
    plugin = tmp_path / "slow_scratch.py"
    plugin.write_text(SLOW_PLUGIN)
    env = {"BENCH_CACHE": str(run_env), **slurm}
    plan = ["--strategy", "scratch,slow-scratch", "--plugin", str(plugin), "--seeds", "2", *SMOKE]
    out = tmp_path / "slurm"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "run", "--launcher", "slurm", "--slurm-time", "20",
         "--slurm-option", "cpus-per-task=1", *plan, "--out", str(out)],
        cwd=REPO, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        # Worker 1 runs seed 1: `scratch`, then the slow unit. Once the slow unit has its first
        # evaluation checkpoint, the task gets SLURM's pre-timeout signal: submitit requeues it.
        checkpoint = out / "shards" / "1" / "checkpoints" / "phantom-2d__slow-scratch__seed1.pt"
        for _ in range(6000):
            if _checkpoint_step(checkpoint) >= 3 or launcher.poll() is not None:
                break
            time.sleep(0.1)
        assert _checkpoint_step(checkpoint) == 3, launcher.communicate()[1][-3000:]
        task = _array_task(out / "logs", 1)
        subprocess.run(["scancel", "--signal=USR2", task], env={**os.environ, **slurm},
                       check=True)
        # A requeued job waits for its begin time (minutes by default): let it start now.
        for _ in range(120):
            shown = subprocess.run(["scontrol", "show", "job", task], capture_output=True,
                                   text=True, env={**os.environ, **slurm}).stdout
            if "JobState=PENDING" in shown and "Restarts=1" in shown:
                subprocess.run(["scontrol", "update", f"JobId={task}", "StartTime=now"],
                               env={**os.environ, **slurm}, capture_output=True)
                break
            time.sleep(0.5)
        stdout, stderr = launcher.communicate(timeout=900)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    log = "".join(p.read_text() for p in (out / "logs").glob(f"{task}/*_log.*"))
    # A failure here is rare and timing-dependent: keep what the job and the controller said.
    ctld = Path(slurm["SLURM_CONF"]).parent / "log" / "ctld.log"
    assert launcher.returncode == 0, "\n".join(
        [stderr[-2000:], "job log:", log[-3000:], "controller:", ctld.read_text()[-3000:]])
    assert "Requeued job" in log  # submitit's checkpoint-and-requeue, not a fresh start
    rows = _rows(sorted((out / "shards").glob("*/results.jsonl")))
    slow = rows["phantom-2d/slow-scratch/seed1"]
    assert slow["resumed_step"] == 3  # from its step-3 evaluation checkpoint, not from scratch
    one = _bench("run", *plan, "--out", str(tmp_path / "one"), env={"BENCH_CACHE": str(run_env)})
    assert one.returncode == 0, one.stderr[-3000:]
    _same_results(rows, _rows([tmp_path / "one" / "results.jsonl"]))
    assert (out / "report.md").is_file()


@pytest.mark.slow
def test_two_local_tune_workers_share_one_study(tmp_path, run_env):
    out = tmp_path / "tune"
    done = _bench("tune", "--launcher", "local", "--workers", "2", "--trials", "3",
                  "--strategy", "scratch", "--task", "phantom-2d", "--profile", "smoke",
                  "--device", "cpu", "--no-progress", "--out", str(out),
                  env={"BENCH_CACHE": str(run_env)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 worker(s)" in done.stdout
    line = next(x for x in done.stdout.splitlines() if x.startswith("smoke/phantom-2d/scratch:"))
    counts = re.match(r".*: (\d+) complete, (\d+) pruned, (\d+) failed", line)
    assert counts and sum(map(int, counts.groups())) == 3, line  # the budget, exactly, over both
    logs = sorted((out / "logs").glob("*/*_log.out"))
    assert len(logs) == 3  # the prepare job and two workers
