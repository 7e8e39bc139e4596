"""`bench run` killed with SIGKILL at several points and rerun ends with exactly the results of an
uninterrupted run (CPU, fp32), with no unit duplicated or redone."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
ARGS = ["--strategy", "scratch,cyclegan-t2t1", "--task", "phantom-2d", "--profile", "smoke",
        "--seeds", "2", "--precision", "fp32", "--device", "cpu", "--no-progress"]
# Wall-clock fields; everything else in a row must match.
TIMING = {"seconds", "train_seconds", "finished_at", "run_dir", "files"}


def _bench(out: Path, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "BENCH_CACHE": str(cache)}
    return subprocess.Popen([sys.executable, "-m", "bench.cli", "run", *ARGS, "--out", str(out)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _rows(out: Path) -> list[dict]:
    path = out / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 300) -> bool:
    """SIGKILL `proc` as soon as `ready()` holds; False when it finished first."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    return False


def _comparable(row):
    """The row without wall-clock times, at any depth (compute holds seconds of each part)."""
    if not isinstance(row, dict):
        return row
    return {k: _comparable(v) for k, v in row.items()
            if k not in TIMING and not k.endswith("seconds")}


@pytest.mark.slow
def test_sigkill_at_several_points_then_rerun_equals_an_uninterrupted_run(tmp_path, cache_dir):
    reference = tmp_path / "reference"
    proc = _bench(reference, cache_dir)
    assert proc.wait() == 0, proc.stderr.read().decode()[-2000:]

    out = tmp_path / "killed"
    checkpoints = out / "checkpoints"
    kill_points = [
        lambda: checkpoints.exists() and any(checkpoints.iterdir()),  # inside the first unit
        lambda: len(_rows(out)) >= 1,                                 # right after a row
        lambda: len(_rows(out)) >= 3,
    ]
    killed = 0
    for ready in kill_points:
        killed += _kill_when(_bench(out, cache_dir), ready)
    assert killed >= 2  # the kills really interrupted runs
    proc = _bench(out, cache_dir)
    assert proc.wait() == 0, proc.stderr.read().decode()[-2000:]

    rows, expected = _rows(out), _rows(reference)
    assert sorted(r["unit"] for r in rows) == sorted(r["unit"] for r in expected)  # no duplicates
    by_unit = {r["unit"]: _comparable(r) for r in expected}
    for row in rows:
        assert _comparable(row) == by_unit[row["unit"]], row["unit"]
        curve = row["files"]["curve"]
        pd.testing.assert_frame_equal(pd.read_csv(out / curve).drop(columns="seconds"),
                                      pd.read_csv(reference / curve).drop(columns="seconds"))
