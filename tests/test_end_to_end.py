"""`bench run --strategy all --profile smoke` as a user types it, in a fresh process."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_run_all_strategies_both_tasks_smoke(tmp_path, cache_dir):
    out = tmp_path / "run"
    env = {**os.environ, "BENCH_CACHE": str(cache_dir)}
    cmd = [sys.executable, "-m", "bench.cli", "run", "--strategy", "all", "--profile", "smoke",
           "--seeds", "1", "--out", str(out), "--no-progress", "--device", "cpu"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # The default precision is auto: chosen by what this CPU computes natively, said once.
    from bench.device import resolve_precision
    chosen = resolve_precision("auto", torch.device("cpu"))
    assert proc.stdout.count("precision: ") == 1 and chosen.line() in proc.stdout

    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    units = {(r["task"], r["strategy"], r["seed"]) for r in rows}
    builtins = ("scratch", "cyclegan-t2t1", "cyclegan-partial", "pretrained-encoder",
                "autoencoder-trunk", "cyclegan-t1t2", "cyclegan-shuffled", "cyclegan-with-d")
    # The inflated 2D pretext is a 3D-only control: `all` leaves it out of 2D tasks.
    assert units == ({(t, s, 0) for t in ("phantom-2d", "phantom-3d") for s in builtins}
                     | {("phantom-3d", "cyclegan-2d-inflated", 0)})
    for r in rows:
        assert r["status"] == "ok", r["reason"]
        assert {"task", "strategy", "seed", "status", "metrics"} <= set(r)
        assert r["metrics"]["fid_final"] is not None and r["metrics"]["fid_init"] is not None
        assert r["reference"]["fid_floor"] < r["reference"]["fid_ceiling"]
        assert r["settings"]["precision"] == chosen.name and r["settings"]["device"] == "cpu"
        assert r["settings"]["precision_reason"] == chosen.reason
        assert r["settings"]["recipe"] == "stabilized"  # the default
        assert r["settings"]["harness"]["augment"] == "translation,cutout"
        assert (out / r["files"]["curve"]).is_file() and (out / r["files"]["samples"]).is_file()
        assert (out / r["files"]["real_samples"]).is_file()
        assert (out / r["files"]["closest"]).is_file()
        # Every final metric has a floor (real validation images) and a ceiling (untrained G).
        for bound in ("floors", "ceilings"):
            assert {"kid_mean", "coverage", "memorized", "nn_ratio_pixels"} <= set(
                r["reference"][bound])
        assert r["reference"]["floors"]["memorized_flag"] == 0
        if r["task"] == "phantom-3d":
            assert (out / r["files"]["samples_nifti"]).is_file()
        # Every metric has a value or a reason, never both, never neither.
        expected = {"fid_final", "fid_best", "fid_auc", "fid_gap", "inception_fid",
                    "inception_kid_mean", "kid_mean", "precision", "recall", "density",
                    "coverage", "msssim", "msssim_real", "ndb_k", "memorized",
                    "memorized_pixels", "nn_ratio", "nn_ratio_pixels", "modes_covered", "mode_tv"}
        if r["task"] == "phantom-3d":
            expected |= {f"inception_fid_{p}" for p in ("axial", "coronal", "sagittal")}
        for name in expected:
            has_value = r["metrics"].get(name) is not None
            assert has_value != (name in r["metrics_missing"]), name
        assert set(r["events"]) >= {"nonfinite_step", "fid_blowup_step", "d_saturation_step",
                                    "coverage_collapse_step",
                                    "diverged", "mode_collapse"}
        curve = list(csv.DictReader(open(out / r["files"]["curve"])))
        assert {"d_acc_real", "d_acc_fake", "msssim", "coverage"} <= set(curve[0])
        needs = {"scratch": set(), "pretrained-encoder": {"autoencoder"},
                 "autoencoder-trunk": {"autoencoder"},
                 "cyclegan-2d-inflated": {"cyclegan-2d"}}.get(r["strategy"], {"cyclegan"})
        assert set(r["pretexts"]) == needs
        # The known modes: the classifier's accuracy recorded, the samples' modes counted.
        modes = r["reference"]["modes"]
        assert set(modes["test_accuracy"]) == set(modes["columns"])
        if modes["k"] == 0:  # 3 smoke volumes: no mode is expected often enough to be judged
            assert "expected 3 times among" in r["metrics_missing"]["modes_covered"]
        assert sum(count for _, count in r["mode_counts"]) == r["reference"]["fid_samples"]
    cyclegan = {r["pretexts"]["cyclegan"]["key"] for r in rows if r["strategy"] == "cyclegan-t2t1"}
    assert len(cyclegan) == 2  # one pretext per task, shared by the strategies that need it
    assert {r["pretexts"]["cyclegan"]["key"] for r in rows if "cyclegan" in r["pretexts"]} == cyclegan

    with open(out / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 2 * len(builtins) + 1
    with open(out / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    assert {(s["task"], s["strategy"]) for s in summary} == {(t, s) for t, s, _ in units}
    report = (out / "report.md").read_text()
    for name in [*builtins, "cyclegan-2d-inflated"]:
        assert name in report
    assert f"- Precision: {chosen.name} ({chosen.reason})\n" in report
    for task in ("phantom-2d", "phantom-3d"):
        assert f"(figures/modes_{task}.png)" in report and (out / "figures" / f"modes_{task}.png").is_file()

    (out / "report.md").unlink()
    proc = subprocess.run([sys.executable, "-m", "bench.cli", "report", str(out)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and (out / "report.md").read_text() == report
