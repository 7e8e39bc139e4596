"""reports/ on the full results schema: summary.csv, comparisons with p-values, divergence and
collapse rates, convergence, figures. The fixture's numbers are chosen so every outcome is known:
in 2D cyclegan-t2t1 (8 seeds, like scratch) is better than scratch on every seed and survives
Holm in the primary family; pretrained-encoder and cyclegan-partial (4 seeds, one diverged and
one collapsed) lack seeds 4-7, so they get no verdict; the 3D task has per-plane Inception FIDs,
a strategy with two seeds and a failed unit. Smaller fixtures test intention to treat, the
withheld verdicts and the compute-matched values."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread, imsave
from scipy import stats

from bench.plan import ALPHA, SMALLEST_EFFECT, family_sizes, plan_seeds, seeds_for
from bench.run import RunConfig
from reports import write_report
from reports.analysis import analyse
from reports.convergence import first_reach
from reports.load import load_rows
from reports.stats import (CONFIDENCE, N_RESAMPLES, fisher_p, holm, paired_interval, signed_rank_p,
                           smallest_exact_p)
from reports.summary import COLUMNS

NO_INCEPTION = "no Inception weights: run `bench fetch-inception`"
STEPS = 600
# 2D final domain FIDs by seed. scratch and cyclegan-t2t1 are completely separated with 8 seeds
# a side (exact Mann-Whitney p = 2 / C(16, 8) = 0.00016); cyclegan-partial is separated too, but
# with 3 final values (seed 3 diverges) its p of 2 / C(11, 3) = 0.012 does not survive Holm.
SCRATCH = [18, 19, 20, 21, 22, 23, 24, 25]
T2T1 = [8, 9, 10, 11, 12, 13, 14, 15]
PRETRAINED = [21, 19, 22, 24]
PARTIAL = [15, 16, 14, 15]
PARTIAL_FINAL = PARTIAL[:3]  # seed 3 diverges


def curve_rows(reach: int | None, final: float | None, stop: int = STEPS) -> list[dict]:
    """FID 100 - step/8 until `reach`, 18 from then on (below every target here), `final` at
    the last step; a diverged unit (final None) ends with a row of losses only. scratch's mean
    curve moves 0.005 of the floor-to-ceiling span over its last third: converged."""
    rows = []
    for step in range(0, stop + 1, 100):
        fid = 18.0 if reach is not None and step >= reach else 100 - step / 8
        rows.append({"step": step, "seconds": step / 10, "fid": fid, "loss_g": 1.0,
                     "loss_d": 1.0, "d_acc_real": 0.6, "d_acc_fake": 0.6, "msssim": 0.3,
                     "coverage": 0.5})
    if final is None:
        rows.append({"step": stop + 50, "seconds": (stop + 50) / 10, "loss_g": float("nan")})
    else:
        rows[-1]["fid"] = final
    return rows


def new_row(task: str, strategy: str, seed: int, fid_final: float | None,
            reach: int | None = None, precision: float = 0.6, dims: int = 2) -> dict[str, Any]:
    """A row of the full schema (metrics, events, reference, files) plus its curve."""
    slug = f"{task}__{strategy}__seed{seed}"
    curve = curve_rows(reach, fid_final)
    fids = [r["fid"] for r in curve if r.get("fid") is not None]
    metrics: dict[str, Any] = {
        "fid_init": 100.0, "fid_final": fid_final, "fid_best": min(fids),
        "fid_best_step": next(r["step"] for r in curve if r.get("fid") == min(fids)),
        "fid_auc": 40.0 + seed, "fid_gap": fid_final - min(fids),
        "kid_mean": fid_final / 1000, "kid_std": 0.001, "precision": precision,
        "recall": 0.5 + seed / 100, "density": 0.9, "coverage": 0.7, "msssim": 0.3,
        "msssim_real": 0.28, "ndb": 2.0, "ndb_k": 0.2, "memorized": 0.05, "memorized_flag": 0.0,
        "memorized_pixels": 0.04, "memorized_pixels_flag": 0.0, "nn_ratio": 1.1,
        "nn_ratio_pixels": 1.0, "modes_covered": 15.0 + seed, "modes_k": 18.0, "mode_tv": 0.1,
        "dark_boxes": 0.0, "checkerboard": 0.02, "checkerboard_real": 0.017,
    }
    missing: dict[str, str] = {}
    if dims == 2:  # a 2D-only entry: 3D rows do not carry it
        metrics.update(levels_covered=6.0, levels_k=6.0)
    if dims == 2:
        metrics.update(inception_fid=None, inception_kid_mean=None, inception_kid_std=None)
        missing.update({k: NO_INCEPTION for k in ("inception_fid", "inception_kid_mean",
                                                  "inception_kid_std")})
    else:
        planes = {"axial": fid_final + 1, "coronal": fid_final + 2, "sagittal": fid_final + 3}
        metrics.update({f"inception_fid_{p}": v for p, v in planes.items()},
                       inception_fid=fid_final + 2, inception_kid_mean=0.01,
                       inception_kid_std=0.002)
    return {
        "unit": f"{task}/{strategy}/seed{seed}", "task": task, "strategy": strategy,
        "seed": seed, "status": "ok", "reason": None, "diverged_step": None, "steps": STEPS,
        "train_seconds": 60.0, "seconds": 70.0, "finished_at": "2026-11-25T10:00:00+00:00",
        "settings": {"profile": "quick", "device": "cpu", "precision": "bf16",
                     "data_fingerprint": f"fp-{task}", "data_seed": 0, "pretext_seed": 0,
                     "data_source": "mni-phantom", "image_size": 32, "dims": dims, "batch_size": 4, "steps": STEPS,
                     "harness": {"steps": STEPS, "eval_every": 100, "pretext_steps": 400,
                                 "domain_steps": 300, "lr_g": 0.0002}},
        "versions": {"python": "3.11.7", "torch": "2.13.0"},
        "hardware": {"cpus": 2, "device": "cpu", "gpu": None},
        "transfer": {"total": 0 if strategy == "scratch" else 500, "g_parameters": 1000,
                     "d_parameters": 200},
        "pretexts": {}, "strategy_origin": "built-in",
        "metrics": metrics, "metrics_missing": missing,
        "events": {"nonfinite_step": None, "fid_blowup_step": None, "d_saturation_step": None,
                   "diversity_collapse_step": None, "coverage_collapse_step": None,
                   "diverged": False, "mode_collapse": False},
        "reference": {"fid_floor": 1.0, "fid_ceiling": 3000.0, "fid_samples": 48,
                      "feature_net": "simclr-conv", "domain_key": f"dom-{task}",
                      "domain_seconds": 12.5, "inception_floor": None if dims == 2 else 3.0,
                      "inception_net": None if dims == 2 else "inception-2015-12-05",
                      "inception_images": 12, "msssim_real": 0.28, "kid_subsets": 10,
                      "kid_subset_size": 48, "prdc_k": 5, "ndb_bins": 4, "msssim_pairs": 10},
        "files": {"curve": f"curves/{slug}.csv", "samples": f"samples/{slug}.png",
                  "samples_nifti": f"samples/{slug}.nii.gz" if dims == 3 else None,
                  "real_samples": f"samples/real__{task}.png"},
        "_curve": curve,
    }


def diverge(row: dict[str, Any], step: int) -> dict[str, Any]:
    reason = f"non-finite loss_g at step {step}"
    row.update(status="diverged", reason=reason, diverged_step=step)
    row["_curve"] = curve_rows(None, None, stop=step - 50)
    final_only = [k for k in row["metrics"] if k not in ("fid_init", "fid_best", "fid_best_step",
                                                        "fid_auc")]
    row["metrics"].update({k: None for k in final_only}, fid_best=40.0, fid_best_step=300)
    row["metrics_missing"] = {"fid_final": reason, "fid_gap": reason,
                              "final_samples": f"no final-sample metrics: {reason}"}
    row["events"].update(nonfinite_step=step, diverged=True)
    row["files"]["samples"] = None
    return row


def failed_row(task: str, strategy: str, seed: int) -> dict[str, Any]:
    row = new_row(task, strategy, seed, 1.0, dims=3)
    for key in ("events", "files", "reference", "_curve"):
        row.pop(key)
    row.update(status="failed", reason="RuntimeError: boom", metrics={},
               metrics_missing={"all": "the unit failed: RuntimeError: boom"}, steps=None)
    return row


def write_store(run_dir: Path, rows: list[dict[str, Any]]) -> Path:
    """results.jsonl, curve CSVs, and real PNGs: 2D grids (wide) and 3D tri-planar (tall)."""
    (run_dir / "curves").mkdir(parents=True)
    (run_dir / "samples").mkdir()
    rng = np.random.default_rng(0)
    for row in rows:
        curve = row.pop("_curve", None)
        if curve is not None:
            pd.DataFrame(curve).to_csv(run_dir / row["files"]["curve"], index=False)
        files = row.get("files") or {}
        shape = (24, 48) if row["settings"]["dims"] == 2 else (48, 24)
        for key in ("samples", "real_samples"):
            if files.get(key):
                imsave(run_dir / files[key], rng.random(shape), cmap="gray")
        if files.get("samples_nifti"):
            (run_dir / files["samples_nifti"]).write_bytes(b"only linked, never read")
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run_dir


def fixture_rows() -> list[dict[str, Any]]:
    rows = []
    for seed, (final, reach) in enumerate(zip(SCRATCH, [400, 500] * 4)):
        rows.append(new_row("phantom-2d", "scratch", seed, final, reach))
    for seed, (final, reach) in enumerate(zip(T2T1, [200, 300] * 4)):
        rows.append(new_row("phantom-2d", "cyclegan-t2t1", seed, final, reach, 0.8 + seed / 100))
    for seed, (final, reach) in enumerate(zip(PRETRAINED, [500, 400, None, None])):
        rows.append(new_row("phantom-2d", "pretrained-encoder", seed, final, reach))
    for seed, final in enumerate(PARTIAL):
        rows.append(new_row("phantom-2d", "cyclegan-partial", seed, final, 300))
    diverge(rows[-1], 350)
    rows[-3]["events"].update(diversity_collapse_step=400, mode_collapse=True)
    for seed, final in enumerate([30, 32, 31]):
        rows.append(new_row("phantom-3d", "scratch", seed, final, 300, dims=3))
    for seed, final in enumerate([20, 21]):
        rows.append(new_row("phantom-3d", "cyclegan-t2t1", seed, final, 200, dims=3))
    rows.append(failed_row("phantom-3d", "pretrained-encoder", 0))
    return rows


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    run = write_store(tmp_path_factory.mktemp("store") / "run", fixture_rows())
    return write_report([run])


@pytest.fixture(scope="module")
def summary(report: dict[str, Path]) -> pd.DataFrame:
    return pd.read_csv(report["summary"]).set_index(["task", "strategy", "metric"])


@pytest.fixture(scope="module")
def text(report: dict[str, Path]) -> str:
    return report["report"].read_text()


def scipy_mean_interval(values: list[float]) -> tuple[float, float]:
    seed = {"rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state":
            np.random.default_rng(0)}
    result = stats.bootstrap((np.array(values, dtype=float),), np.mean, n_resamples=N_RESAMPLES,
                             confidence_level=CONFIDENCE, method="percentile", **seed)
    return result.confidence_interval.low, result.confidence_interval.high


def line_with(text: str, *parts: str) -> str:
    return next(line for line in text.splitlines() if all(p in line for p in parts))


def p_text(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def test_summary_csv_statistics(summary: pd.DataFrame) -> None:
    assert list(summary.reset_index().columns) == list(COLUMNS)
    row = summary.loc[("phantom-2d", "scratch", "fid_final")]
    assert row["n"] == 8 and row["mean"] == pytest.approx(21.5)
    assert row["median"] == pytest.approx(21.5)
    assert row["std"] == pytest.approx(np.std(SCRATCH, ddof=1))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(scipy_mean_interval(SCRATCH))
    assert row["interval"] == "bootstrap"
    # The diverged unit has no final FID but does have a best one.
    assert summary.loc[("phantom-2d", "cyclegan-partial", "fid_final"), "n"] == 3
    assert summary.loc[("phantom-2d", "cyclegan-partial", "fid_best"), "n"] == 4
    two = summary.loc[("phantom-3d", "cyclegan-t2t1", "fid_final")]
    assert two["n"] == 2 and two["interval"] == "none" and pd.isna(two["ci_low"])
    axial = summary.loc[("phantom-3d", "scratch", "inception_fid_axial")]
    assert axial["mean"] == pytest.approx(32)
    assert ("phantom-2d", "scratch", "inception_fid_axial") not in summary.index  # 3D only
    assert summary.loc[("phantom-2d", "scratch", "inception_fid"), "n"] == 0


def test_summary_rates_use_wilson_over_units_that_ran(summary: pd.DataFrame) -> None:
    wilson = stats.binomtest(1, 4).proportion_ci(method="wilson")
    for name in ("divergence_rate", "mode_collapse_rate"):
        row = summary.loc[("phantom-2d", "cyclegan-partial", name)]
        assert row["n"] == 4 and row["mean"] == pytest.approx(0.25) and row["interval"] == "wilson"
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((wilson.low, wilson.high))
    assert summary.loc[("phantom-2d", "scratch", "divergence_rate"), "mean"] == 0
    failed = summary.loc[("phantom-3d", "pretrained-encoder", "divergence_rate")]
    assert failed["n"] == 0 and failed["interval"] == "none"  # a failed unit never trained


def test_holm_by_hand() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert holm([0.4, 0.9]) == pytest.approx([0.8, 0.9])  # step-down stays monotone
    assert holm([]) == []
    # A family declared larger than the tests run corrects as if all had run.
    assert holm([0.01, 0.04], family_size=5) == pytest.approx([0.05, 0.16])


def test_paired_comparisons_and_their_families(tmp_path: Path) -> None:
    run = write_store(tmp_path / "run", fixture_rows())
    analysis = analyse(load_rows([run]).rows, [])
    comparisons = analysis.comparisons["phantom-2d"]
    by_key = {(c.metric, c.strategy, c.matching): c for c in comparisons}
    assert not any(c.metric == "fid_best" for c in comparisons)  # optimistic: never compared
    assert not any(c.metric == "fid_auc" and c.matching == "compute" for c in comparisons)

    best = by_key[("fid_final", "cyclegan-t2t1", "step")]
    assert best.family == "primary" and best.n_pairs == 8 and best.n_diverged == 0
    assert best.diff_mean == pytest.approx(-10) and best.differences == {s: -10.0 for s in range(8)}
    # Better on all 8 seeds: the exact signed-rank p is 2 / 2^8; Holm over the declared
    # family of two (the compute-matched test has no values here) doubles it.
    assert best.p == pytest.approx(smallest_exact_p(8)) and best.p_holm == pytest.approx(2 / 128)
    assert best.ci_high < 0 and best.verdict == "better"
    assert best.smallest_effect == pytest.approx(SMALLEST_EFFECT * 2999) and best.beyond_smallest == "no"
    compute = by_key[("fid_final", "cyclegan-t2t1", "compute")]
    assert compute.family == "primary" and compute.verdict == "no verdict" and compute.p is None
    # 4 seeds against 8: no pairs for seeds 4-7, so no verdict until the run is finished.
    for strategy in ("pretrained-encoder", "cyclegan-partial"):
        c = by_key[("fid_final", strategy, "step")]
        assert c.verdict == "no verdict" and c.why == (
            f"seed(s) 4, 5, 6, 7 of {strategy} missing: finish the run")

    names = list(dict.fromkeys(c.metric for c in comparisons))
    sizes = family_sizes(names, 2)
    for name in ("secondary", "exploratory"):
        members = [c for c in comparisons if c.family == name and c.p is not None]
        assert members and [c.p_holm for c in members] == pytest.approx(
            holm([c.p for c in members], sizes[name]))
    # The leading metric of every other strategy is secondary; every other metric exploratory.
    assert {c.family for c in comparisons if c.metric == "fid_final"} == {"primary", "secondary"}
    assert {c.family for c in comparisons if c.metric != "fid_final"} == {"exploratory"}
    assert sizes["secondary"] == 2 * 6  # the 6 other planned strategies of a 2D task
    assert family_sizes(names, 3)["secondary"] == 2 * 7  # and the inflated 2D pretext in 3D
    precision = by_key[("precision", "cyclegan-t2t1", "step")]  # higher is better
    assert precision.family == "exploratory"
    assert precision.diff_mean > 0 and precision.p == pytest.approx(smallest_exact_p(8))
    # As clear as the primary, but one of a large family: no verdict of its own.
    assert precision.verdict == "no clear difference" and precision.p_holm > ALPHA
    assert not any(c.metric.startswith("inception") for c in comparisons)  # no values in 2D
    csv = pd.read_csv(write_report([run])["comparisons"])
    assert len(csv) == sum(len(v) for v in analysis.comparisons.values())


def test_paired_test_and_interval_against_scipy() -> None:
    d = np.array([-3.0, -1.0, 2.5, -4.0, -6.0, -0.5, -2.0])
    assert signed_rank_p(d) == pytest.approx(stats.wilcoxon(d, method="exact").pvalue)
    assert signed_rank_p(-d) == pytest.approx(signed_rank_p(d))
    low, high = paired_interval(d)
    assert (low, high) == pytest.approx(scipy_mean_interval(list(d)))
    assert paired_interval(d[:2]) == (None, None)
    # An infinite difference (a lost unit) takes the largest rank, as a finite one would.
    assert signed_rank_p(np.r_[d[:-1], -np.inf]) == pytest.approx(
        signed_rank_p(np.r_[d[:-1], -100.0]))
    assert signed_rank_p([]) is None and signed_rank_p([0.0, np.nan]) == 1.0
    assert fisher_p(3, 7, 0, 7) == pytest.approx(stats.fisher_exact([[3, 4], [0, 7]]).pvalue)
    assert fisher_p(0, 0, 1, 2) is None


def seven(task: str, strategy: str, finals: list[float]) -> list[dict[str, Any]]:
    return [new_row(task, strategy, seed, final, 300) for seed, final in enumerate(finals)]


def seven_seed_rows(shift: float = -10.0) -> list[dict[str, Any]]:
    """2D, 7 seeds a side, cyclegan-t2t1 better than scratch by `shift` on every seed."""
    base = [20.0 + s for s in range(7)]
    return seven("phantom-2d", "scratch", base) + seven("phantom-2d", "cyclegan-t2t1",
                                                        [b + shift for b in base])


def primary(tmp_path: Path, rows: list[dict[str, Any]], matching: str = "step"):
    run = write_store(tmp_path / "run", rows)
    analysis = analyse(load_rows([run]).rows, [])
    return next(c for c in analysis.comparisons["phantom-2d"] if c.family == "primary"
                and c.matching == matching)


def test_seven_seeds_are_the_fewest_that_pass_the_primary_family(tmp_path: Path) -> None:
    assert holm([smallest_exact_p(7)] * 2)[0] < ALPHA <= holm([smallest_exact_p(6)] * 2)[0]
    assert RunConfig.__dataclass_fields__["seeds"].default == 7
    assert primary(tmp_path / "a", seven_seed_rows()).verdict == "better"
    six = [r for r in seven_seed_rows() if r["seed"] < 6]
    assert primary(tmp_path / "b", six).verdict == "no clear difference"


def test_default_seeds_reach_a_verdict_in_every_family_of_the_plan() -> None:
    # Primary pair alone: 7; with any other strategy the secondary family (12 tests in 2D, 14 in
    # 3D) needs 2 / 2^n x size < 0.05: 9 seeds in 2D, 10 once a 3D task is in.
    assert [seeds_for(size) for size in (2, 12, 14)] == [7, 9, 10]
    assert holm([smallest_exact_p(9)] * 12, 12)[0] < ALPHA <= holm([smallest_exact_p(8)] * 12, 12)[0]
    assert plan_seeds(["scratch", "cyclegan-t2t1"], {2, 3}) == 7
    assert plan_seeds(["scratch", "cyclegan-t2t1", "cyclegan-shuffled"], {2}) == 9
    assert plan_seeds(["scratch", "autoencoder-trunk"], {2, 3}) == 10
    # A task variant's primary pair is secondary too: 14 tests in 2D, 16 in 3D.
    assert family_sizes([], 2, variant=True) == {"primary": 0, "secondary": 14, "exploratory": 0}
    assert plan_seeds(["scratch", "cyclegan-t2t1"], {2}, variants=True) == 10


def test_a_diverged_unit_stays_in_its_pair(tmp_path: Path) -> None:
    """9 seeds: cyclegan-t2t1 a little better on 7 and diverged on 2. Counting only survivors
    says better; counting every unit (worst rank, ceiling in the mean) does not."""
    base = [20.0 + s for s in range(9)]
    rows = (seven("phantom-2d", "scratch", base)
            + seven("phantom-2d", "cyclegan-t2t1", [b - 1 for b in base]))
    for row in rows[-2:]:
        diverge(row, 350)
    survivors = [r for r in rows if r["seed"] < 7]
    assert primary(tmp_path / "survivors", survivors).verdict == "better"
    itt = primary(tmp_path / "itt", rows)
    assert itt.n_pairs == 9 and itt.n_diverged == 2
    # Worst-ranked: the two lost pairs hold ranks 8 and 9 against the strategy.
    assert itt.p == pytest.approx(signed_rank_p(np.r_[[-1.0] * 7, np.inf, np.inf]))
    assert itt.differences[7] == pytest.approx(3000.0 - 27.0)  # the ceiling, against seed 7
    assert itt.verdict == "no clear difference" and itt.diff_mean > 0


def test_failed_units_pretext_counts_infrastructure_withholds(tmp_path: Path) -> None:
    rows = seven_seed_rows()
    rows[-1] = failed_row("phantom-2d", "cyclegan-t2t1", 6)
    rows[-1]["settings"]["dims"] = 2
    held = primary(tmp_path / "oom", rows)
    assert held.verdict == "no verdict" and held.why.startswith("1 unit(s) failed for reasons "
                                                                 "other than training")
    assert "phantom-2d/cyclegan-t2t1/seed6" in held.why and "rerun `bench run`" in held.why
    rows[-1].update(reason="pretext cyclegan failed: RuntimeError: non-finite weights",
                    failure="pretext")
    counted = primary(tmp_path / "pretext", rows)
    assert counted.n_diverged == 1 and counted.withheld is None and counted.n_pairs == 7


def test_the_baseline_gate_withholds_every_verdict(tmp_path: Path) -> None:
    rows = seven_seed_rows()
    for row in rows:  # scratch at 0.1 of the way from floor to ceiling: noise
        if row["strategy"] == "scratch":
            row["metrics"]["fid_final"] = 300.0 + row["seed"]
    noise = primary(tmp_path / "noise", rows)
    assert noise.verdict == "no verdict" and "scratch did not learn" in noise.why
    text = write_report([tmp_path / "noise" / "run"])["report"].read_text()
    assert "- **No verdict on this task**: scratch did not learn" in text
    assert ("mean paired difference at equal steps -290.00 over 7 seed pair(s) (descriptive "
            "only)") in text
    rows = seven_seed_rows()
    for row in rows:
        row["reference"]["floors"] = {"coverage": 0.9}
        if row["strategy"] == "scratch":
            row["metrics"]["coverage"] = 0.2
    collapsed = primary(tmp_path / "collapsed", rows)
    assert collapsed.verdict == "no verdict" and "collapsed" in collapsed.why


def test_compute_matched_values_come_from_the_baseline_budget(tmp_path: Path) -> None:
    rows = seven_seed_rows(shift=-1.0)
    for row in rows:
        if row["strategy"] == "scratch":  # trained on: 5 better at cyclegan-t2t1's budget
            row["budgets"] = {"cyclegan-t2t1": {"status": "ok", "step": 900, "flops": 1e12,
                                                "fid_final": row["metrics"]["fid_final"] - 5}}
    rows[3]["budgets"]["cyclegan-t2t1"] = {"status": "diverged", "step": 700}
    c = primary(tmp_path / "r", rows, "compute")
    assert c.n_pairs == 7 and c.n_diverged == 1
    assert c.differences[0] == pytest.approx(4.0) and c.differences[3] < 0
    step = primary(tmp_path / "s", rows, "step")
    assert step.diff_mean == pytest.approx(-1.0) and step.verdict == "better"


def test_a_baseline_without_a_budget_is_missing_not_lost(tmp_path: Path) -> None:
    rows = seven_seed_rows(shift=-1.0)
    for row in rows:
        if row["strategy"] == "scratch" and row["seed"] > 0:
            row["budgets"] = {"cyclegan-t2t1": {"status": "ok", "step": 900,
                                                "fid_final": row["metrics"]["fid_final"]}}
    c = primary(tmp_path / "r", rows, "compute")  # seed 0 ran before cyclegan-t2t1 joined
    assert c.verdict == "no verdict" and c.n_diverged == 0
    assert c.why.startswith("scratch seed(s) 0 did not train on to cyclegan-t2t1's compute budget")


def test_seeds_of_the_plan_missing_from_every_directory_withhold(tmp_path: Path) -> None:
    rows = [r for r in seven_seed_rows() if r["seed"] != 3]  # one shard's seed not merged
    for row in rows:
        row["settings"]["seeds"] = 7
    c = primary(tmp_path / "r", rows)
    assert c.verdict == "no verdict" and c.why.startswith("seed(s) 3 of the planned 7 are in no")


def test_report_comparison_rows(text: str) -> None:
    row = line_with(text, "| final domain FID ↓ | cyclegan-t2t1 | step |")
    assert "| primary | 8 | -10.00 |" in row and row.endswith("| no | better |")
    assert f"| {p_text(smallest_exact_p(8))} | {p_text(2 * smallest_exact_p(8))} |" in row
    assert "no verdict: no scratch values at cyclegan-t2t1's compute budget" in line_with(
        text, "| final domain FID ↓ | cyclegan-t2t1 | compute |")
    assert "| best domain FID ↓ | cyclegan-t2t1 |" not in text  # shown, never compared
    assert "seed(s) 2 of cyclegan-t2t1 missing" in line_with(
        text, "| final domain FID ↓ | cyclegan-t2t1 | step | primary | 2 |")
    assert "Holm" in text and "Warning: cyclegan-t2t1 has only 2 seed(s)" in text


def test_metric_tables_and_missing_reasons(text: str) -> None:
    assert f"| final domain FID ↓ | 21.50 ± {np.std(SCRATCH, ddof=1):.2f} (n=8) |" in text
    assert "15.00 ± 1.00 (n=3 of 4)" in text  # cyclegan-partial: the diverged seed has none
    axial = line_with(text, "| axial Inception FID ↓ |")
    assert "32.00 ± 1.00 (n=3)" in axial
    assert text.count("| axial Inception FID ↓ |") == 1  # 3D task only
    assert ("- inception_fid, inception_kid_mean, inception_kid_std (23 units: scratch seeds "
            "0, 1, 2, 3, 4, 5, 6, 7; cyclegan-partial seeds 0, 1, 2; cyclegan-t2t1 seeds 0, 1, 2, "
            "3, 4, 5, 6, 7; pretrained-encoder seeds 0, 1, 2, 3): ") in text
    assert NO_INCEPTION in line_with(text, "| Inception network |")
    assert "inception-2015-12-05" in line_with(text, "| Inception network |")
    assert "simclr-conv (key dom-phantom-2d, trained in 12.5 s)" in text
    missing = line_with(text, "`phantom-2d/cyclegan-partial/seed3`", "no final-sample metrics")
    assert "kid_mean" in missing and "fid_final" not in missing
    assert "the unit failed: RuntimeError: boom" in text


def test_divergence_and_collapse_tables(text: str) -> None:
    diverged = line_with(text, "| cyclegan-partial | 4 | 1 | 25% (5–70%) |", "non-finite")
    assert "seed 3: non-finite loss at step 350, training stopped at step 350" in diverged
    collapse = line_with(text, "| cyclegan-partial | 4 | 1 | 25% (5–70%) |", "collapse")
    assert "seed 1: diversity collapse at step 400" in collapse
    assert "cyclegan-partial 1 of 4 (25%, 95% CI 5–70%)" in text  # findings


def test_convergence_from_curves(tmp_path: Path, text: str) -> None:
    curve = pd.DataFrame({"step": [0, 100, 200, 300], "seconds": [0, 5, 10, 15],
                          "fid": [90, float("nan"), 21.0, 25]})
    assert first_reach(curve, 21.5) == (200, 10.0)
    assert first_reach(curve, 5.0) is None
    run = write_store(tmp_path / "run", fixture_rows())
    units = analyse(load_rows([run]).rows, []).convergence.set_index("unit")
    assert units.loc["phantom-2d/scratch/seed0", "target"] == pytest.approx(21.5)
    steps = [units.loc[f"phantom-2d/cyclegan-t2t1/seed{s}", "steps_to_target"] for s in range(8)]
    assert steps == [200, 300] * 4
    assert pd.isna(units.loc["phantom-2d/pretrained-encoder/seed3", "steps_to_target"])
    row = line_with(text, "| cyclegan-t2t1 | 8 of 8 (100%) | 250 |")
    assert "1.80× (95% CI" in row  # scratch: 450 steps on average
    assert "| pretrained-encoder | 2 of 4 (50%) | 450 |" in text
    assert "too few units reaching the target" in line_with(text, "| cyclegan-t2t1 | 2 of 2")
    assert "target = median final domain FID of scratch = 21.50" in text


def test_figures_are_linked_and_readable(report: dict[str, Path], text: str) -> None:
    out = report["report"].parent
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(images) == 6  # curves, metric bars, samples for each task
    for link in images + re.findall(r"\[(?:png|nifti)\]\(([^)]+)\)", text):
        assert (out / link).is_file(), link
    for task in ("phantom-2d", "phantom-3d"):
        assert report[f"samples:{task}"].is_file() and report[f"metrics:{task}"].is_file()
        assert imread(report[f"samples:{task}"]).shape[1] > 100


def test_no_nan_or_inf_and_the_answer_first(text: str) -> None:
    assert not re.search(r"\b(nan|inf)\b", text, re.IGNORECASE)
    assert text.index("## The answer") < text.index("## Set-up") < text.index("## Other findings")
    answer = text[text.index("## The answer"):text.index("## Set-up")]
    assert "### phantom-2d (2D): synthetic mni-phantom data, not real scans, 8 seed(s)" in answer
    primary_line = line_with(answer, "**cyclegan-t2t1 vs scratch** (final domain FID, primary)")
    assert "at equal steps: **better** (difference -10.00; 95% CI" in primary_line
    assert "8 seed pairs" in primary_line and "at equal compute: **no verdict**" in primary_line
    assert "diverged: cyclegan-t2t1 0 of 8, scratch 0 of 8" in primary_line
    assert "- cyclegan-partial vs scratch (final domain FID, secondary): at equal steps: " \
           "**no verdict** (seed(s) 4, 5, 6, 7 of cyclegan-partial missing" in answer
    assert "- Baseline: scratch learned" in answer and "diverged 0 of 8, mode collapse 0 of 8" \
        in answer
    assert "scratch learned" in text
    # Secondary metrics list only verdicts that survive Holm in their (large) family.
    assert "other metrics, cyclegan-t2t1" not in text
    assert "cyclegan-t2t1 across tasks: better at equal steps on phantom-2d (2D); no verdict " \
           "at equal compute on phantom-2d (2D); no verdict at equal steps on phantom-3d (3D)" \
        in text


def test_per_plane_inception_fids_share_the_missing_reason(tmp_path: Path) -> None:
    row = new_row("phantom-3d", "scratch", 0, 30.0, 300, dims=3)
    names = [k for k in row["metrics"] if k.startswith("inception_")]
    row["metrics"].update({k: None for k in names})
    row["metrics_missing"].update({k: NO_INCEPTION for k in ("inception_fid", "inception_kid_mean",
                                                             "inception_kid_std")})
    text = write_report([write_store(tmp_path / "run", [row])])["report"].read_text()
    line = line_with(text, "- inception_fid,", "inception_fid_sagittal")
    assert line.endswith(NO_INCEPTION) and "no reason recorded" not in text


def test_axis_and_movement_sections_from_a_fixture_store(tmp_path: Path) -> None:
    """The base task (100 subjects) and a 10-subject variant, 10 seeds each: cyclegan-t2t1 better
    by 10 on the base task and by 20 on the variant, on every seed."""
    rows = []
    for task, n, shift in (("phantom-2d", None, -10.0), ("phantom-2d@10", 10, -20.0)):
        base = [20.0 + s for s in range(10)]
        for strategy, finals in (("scratch", base), ("cyclegan-t2t1", [b + shift for b in base])):
            for seed, final in enumerate(finals):
                row = new_row(task, strategy, seed, final, 300)
                row["settings"].update(base_task="phantom-2d", train_subjects=n,
                                       pretext_steps_scale=None, train_subjects_used=n or 100)
                moved = 0.1 if strategy == "cyclegan-t2t1" else 2.0
                row["movement"] = {"stem": 1.0, "encoder": moved + seed / 100, "residual": moved,
                                   "decoder": moved, "discriminator": 0.5, "head": 0.5}
                if strategy == "cyclegan-t2t1":
                    row["transfer"].update(encoder=100, residual=300, decoder=100)
                rows.append(row)
    run = write_store(tmp_path / "run", rows)
    text = write_report([run])["report"].read_text()
    section = text[text.index("## Along the axes"):text.index("## Set-up")]
    table = [line for line in section.splitlines() if line.startswith("| 1")]
    assert table[0].startswith("| 10 | `phantom-2d@10` | cyclegan-t2t1 | at equal steps | 10 | "
                               "-20.00 |")
    assert table[0].endswith("| better |")  # 2 / 2^10 x 14 = 0.027 in the variant's family
    assert table[-2].startswith("| 100 | `phantom-2d` | cyclegan-t2t1 | at equal steps | 10 | "
                                "-10.00 |")
    assert table[-1].endswith("| no verdict |")  # the fixture's scratch has no compute budgets
    assert (run / "figures" / "axis-subjects_phantom-2d.png").is_file()
    assert "- A variant of phantom-2d (see Along the axes): every line is secondary." in text
    assert "- **cyclegan-t2t1 vs scratch** (final domain FID, primary): at equal steps: " \
           "**better**" in text  # the base task keeps its primary family
    moved = text[text.index("### How far training moved the weights"):]
    line = line_with(moved, "| cyclegan-t2t1 |")
    assert "| 0.145 ± 0.030 (n=10) (T) | 0.100 ± 0.000 (n=10) (T) |" in line
    assert line_with(moved, "| scratch |").count("(T)") == 0


def test_the_inception_reason_reaches_the_setup_when_every_unit_diverged(tmp_path: Path) -> None:
    rows = [diverge(new_row("phantom-2d", st, 0, 30.0), 200) for st in ("scratch", "cyclegan-t2t1")]
    for row in rows:
        row["reference"]["inception_missing"] = NO_INCEPTION
    text = write_report([write_store(tmp_path / "run", rows)])["report"].read_text()
    assert line_with(text, "| Inception network |").endswith(f"none: {NO_INCEPTION} |")


def test_no_verdict_while_the_baseline_has_not_converged(tmp_path: Path) -> None:
    """The same finals, but scratch's curves still falling steeply over their last third
    (bench.metrics.states.converged): the baseline gate withholds every verdict."""
    rows = fixture_rows()
    for row in rows:
        if row["task"] == "phantom-2d" and row["strategy"] == "scratch":
            for point in row["_curve"][:-1]:
                point["fid"] = 200.0 - point["step"] / 4  # 50 at step 600: 0.05 of the span
    analysis = analyse(load_rows([write_store(tmp_path / "run", rows)]).rows, [])
    health = analysis.health["phantom-2d"]
    assert health.learned and health.converged is False and not health.fit
    assert "had not converged" in health.text
    primary = [c for c in analysis.comparisons["phantom-2d"]
               if c.metric == "fid_final" and c.strategy == "cyclegan-t2t1"]
    assert primary and all(c.verdict == "no verdict" for c in primary)
    assert analysis.health["phantom-3d"].fit  # its scratch settled


def test_answer_flags_a_validated_metric_that_disagrees(monkeypatch) -> None:
    """2D published pattern: domain FID says cyclegan-t2t1 is worse, Inception FID says better.
    Flagged only once Inception FID is validated in 2D, and only where the signs differ."""
    import dataclasses

    from bench.metrics import registry
    from reports.answer import disagreement
    from reports.comparisons import PairedComparison

    def comparison(name: str, diff: float, matching: str = "step") -> PairedComparison:
        return PairedComparison("phantom-2d", "cyclegan-t2t1", name, "primary", matching, False,
                                n_pairs=2, diff_mean=diff)

    lead = comparison("fid_final", 21.0)
    others = [lead, comparison("inception_fid", -27.0), comparison("kid_mean", 0.01),
              comparison("inception_fid", 5.0, "compute")]
    entry = registry.REGISTRY["inception_fid"]
    monkeypatch.setitem(registry.REGISTRY, "inception_fid", dataclasses.replace(entry, validated=()))
    assert disagreement(lead, others, 2) == ""
    monkeypatch.setitem(registry.REGISTRY, "inception_fid",
                        dataclasses.replace(entry, validated=(2,)))
    flag = disagreement(lead, others, 2)
    assert "metrics disagree" in flag and "Inception FID (difference -27.00)" in flag
    assert "KID" not in flag  # same sign as the leading metric
    assert disagreement(lead, others, 3) == ""  # validated in 2D only
    assert disagreement(comparison("fid_final", 21.0, "compute"), others, 2) == ""
