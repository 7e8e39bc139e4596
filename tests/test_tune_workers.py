"""`bench tune` as separate processes: two workers on one storage (SQLite, and a real PostgreSQL
server where its binaries are installed) share each study's budget exactly, and a worker stopped
mid-trial (Ctrl-C, SIGKILL) is resumed from its checkpoint by rerunning the command, ending with
exactly the trials of an uninterrupted run (CPU, fp32)."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import torch

from bench.tuning.storage import open_storage
from bench.tuning.trials import COUNTED, effort, live
from bench.tuning.tune import study_name

REPO = Path(__file__).resolve().parents[1]
STRATEGIES = ("scratch", "cyclegan-t2t1")


def _tune(out: Path, cache: Path, trials: int, storage: str | None = None,
          strategies=STRATEGIES) -> subprocess.Popen:
    args = ["--strategy", ",".join(strategies), "--task", "phantom-2d", "--profile", "smoke",
            "--trials", str(trials), "--precision", "fp32", "--device", "cpu", "--no-progress",
            "--heartbeat", "5", "--out", str(out)]
    args += ["--storage", storage] if storage else []
    env = {**os.environ, "BENCH_CACHE": str(cache)}
    # A shell that started the tests in the background ignores SIGINT, and children inherit
    # that (Python then raises no KeyboardInterrupt): the worker gets Ctrl-C's usual meaning.
    return subprocess.Popen([sys.executable, "-m", "bench.cli", "tune", *args], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _finish(proc: subprocess.Popen) -> None:
    assert proc.wait(timeout=600) == 0, proc.stderr.read().decode()[-3000:]


def _study(url: str, strategy: str) -> optuna.Study:
    return optuna.load_study(study_name=study_name("smoke", "phantom-2d", strategy),
                             storage=open_storage(url, 5, 15))


def _sqlite(out: Path) -> str:
    return f"sqlite:///{out / 'tune.db'}"


def _two_workers_share_the_budget(out: Path, cache: Path, url: str | None) -> None:
    workers = [_tune(out, cache, 3, url) for _ in range(2)]
    for proc in workers:
        _finish(proc)
    pids = {proc.pid for proc in workers}
    for strategy in STRATEGIES:
        trials = _study(url or _sqlite(out), strategy).get_trials(deepcopy=False)
        # Exactly the cap: no worker created a trial beyond it, none is left running.
        assert len(trials) == 3 and {t.state for t in trials} <= set(COUNTED)
        assert sorted(t.user_attrs["slot"] for t in trials) == [0, 1, 2]
        assert {t.user_attrs["worker"]["pid"] for t in trials} <= pids


@pytest.mark.slow
def test_two_workers_on_one_sqlite_file_share_each_budget_exactly(tmp_path, cache_dir):
    _two_workers_share_the_budget(tmp_path / "tune", cache_dir, None)


def _postgres_binaries() -> Path | None:
    for folder in [*sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True),
                   *[Path(p) for p in os.environ.get("PATH", "").split(os.pathsep)]]:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


@pytest.fixture
def postgres_url():
    """A throwaway PostgreSQL server on 127.0.0.1 (Debian's postgresql, as .ci/run installs)."""
    pytest.importorskip("psycopg2", reason="psycopg2 missing: pip install '.[postgres]'")
    binaries = _postgres_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install "
                    "postgresql")
    as_user = []
    if os.geteuid() == 0:  # the server refuses to run as root
        if subprocess.run(["id", "postgres"], capture_output=True).returncode != 0:
            pytest.skip("running as root without a 'postgres' user to start the server as")
        as_user = ["runuser", "-u", "postgres", "--"]
    # Not under pytest's tmp_path: the server's user must be able to reach the folder.
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as folder:
        data = Path(folder) / "data"
        data.mkdir()
        os.chmod(folder, 0o755)
        if as_user:
            shutil.chown(data, "postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]

        def pg(tool: str, *args: str) -> None:
            subprocess.run([*as_user, str(binaries / tool), *args], check=True,
                           capture_output=True)

        pg("initdb", "-D", str(data), "-U", "bench", "--auth=trust")
        pg("pg_ctl", "-D", str(data), "-w", "-l", str(data / "log"), "-o",
           f"-h 127.0.0.1 -p {port} -k {data}", "start")
        try:
            pg("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "bench", "tune")
            yield f"postgresql+psycopg2://bench@127.0.0.1:{port}/tune"
        finally:
            pg("pg_ctl", "-D", str(data), "-m", "immediate", "stop")


@pytest.mark.slow
def test_two_workers_on_postgresql_share_each_budget_exactly(tmp_path, cache_dir, postgres_url):
    _two_workers_share_the_budget(tmp_path / "tune", cache_dir, postgres_url)


def _stop_mid_trial(proc: subprocess.Popen, folder: Path, since: float) -> bool:
    """Freeze the worker (SIGSTOP) once a trial has checkpointed at step 3 of 6 since `since`,
    so that the signal sent next lands inside that trial however fast the trial runs; False if
    the worker finished first. Looking is cheap (file times) until a checkpoint appears; only the
    frozen worker's checkpoint is read."""
    while proc.poll() is None:
        fresh = [p for p in folder.glob("*/trial-*.pt") if _mtime(p) >= since]
        if not fresh:
            time.sleep(0.002)
            continue
        proc.send_signal(signal.SIGSTOP)
        for path in folder.glob("*/trial-*.pt"):
            try:
                if torch.load(path, map_location="cpu", weights_only=False)["step"] == 3:
                    return True
            except Exception:  # being replaced or removed
                pass
        proc.send_signal(signal.SIGCONT)  # the step-6 checkpoint: that trial is ending
        since = time.time()
    return False


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _outcomes(study: optuna.Study) -> list:
    """The counted trials in order, as an uninterrupted study would also hold them."""
    return [(t.state, t.params, t.value, t.intermediate_values)
            for t in live(study.get_trials(deepcopy=False))]


@pytest.mark.slow
def test_sigkill_mid_trial_then_rerun_resumes_and_equals_an_uninterrupted_study(tmp_path,
                                                                                 cache_dir):
    reference = tmp_path / "reference"
    _finish(_tune(reference, cache_dir, 3, strategies=("scratch",)))

    out = tmp_path / "killed"
    killed = 0
    for sig in (signal.SIGINT, signal.SIGKILL, signal.SIGKILL):  # Ctrl-C, then kill -9
        started = time.time()
        proc = _tune(out, cache_dir, 3, strategies=("scratch",))
        if _stop_mid_trial(proc, out / "checkpoints", started):
            proc.send_signal(sig)
            proc.send_signal(signal.SIGCONT)  # a SIGINT is handled once the worker runs again
            proc.wait()
            killed += 1
        else:
            _finish(proc)
    assert killed >= 1
    _finish(_tune(out, cache_dir, 3, strategies=("scratch",)))

    study, expected = _study(_sqlite(out), "scratch"), _study(_sqlite(reference), "scratch")
    assert _outcomes(study) == _outcomes(expected)
    assert effort(study)["trials"] == 3 and effort(study)["retried"] == killed
    # Each killed trial went on from the checkpoint it had written, not from step 0.
    retries = [t for t in live(study.get_trials(deepcopy=False))
               if t.system_attrs.get("retry_history")]
    assert [t.user_attrs["resumed_step"] for t in retries] == [3] * killed
    # A retry that finished is not marked with its killed attempt's fate.
    assert not any(t.user_attrs["interrupted"] or t.user_attrs["reason"] for t in retries)
    assert not list((out / "checkpoints").glob("*/trial-*.pt"))  # finished trials leave none
