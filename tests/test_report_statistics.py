"""reports/ on the full results schema: summary.csv, comparisons with p-values, divergence and
collapse rates, convergence, figures. The fixture's numbers are chosen so every outcome is known:
in 2D cyclegan-t2t1 (8 seeds, like scratch) is clearly better than scratch and survives Holm,
pretrained-encoder is not different, and cyclegan-partial (4 seeds, one diverged and one
collapsed) is clearly separated but has too few seeds for its Mann-Whitney p to survive Holm;
the 3D task has per-plane Inception FIDs, a strategy with two seeds and a failed unit."""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread, imsave
from scipy import stats

from reports import write_report
from reports.analysis import analyse
from reports.convergence import first_reach
from reports.load import load_rows
from reports.stats import ALPHA, CONFIDENCE, N_RESAMPLES, compare, holm
from reports.summary import COLUMNS

NO_INCEPTION = "no Inception weights: run `bench fetch-inception`"
HOLM_FAILS = "no clear difference (the interval excludes zero, but Holm p ≥ 0.05)"
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
    """FID 100 - step/10 until `reach`, 18 from then on (below every target here), `final` at
    the last step; a diverged unit (final None) ends with a row of losses only."""
    rows = []
    for step in range(0, stop + 1, 100):
        fid = 18.0 if reach is not None and step >= reach else 100 - step / 10
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
        "nn_ratio_pixels": 1.0,
    }
    missing: dict[str, str] = {}
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
                     "image_size": 32, "dims": dims, "batch_size": 4, "steps": STEPS,
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
        "reference": {"fid_floor": 1.0, "fid_ceiling": 1000.0, "fid_samples": 48,
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


def mann_whitney(x: list[float], y: list[float]) -> float:
    return float(stats.mannwhitneyu(x, y, alternative="two-sided").pvalue)


def domain_family_p() -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], float]]:
    """Raw and Holm-adjusted p of the 2D domain family (final FID, FID AUC = 40 + seed, KID =
    final FID / 1000; the best FID is not compared), from SciPy on the fixture's numbers."""
    auc = {name: [40.0 + seed for seed in range(len(values))]
           for name, values in (("scratch", SCRATCH), ("cyclegan-t2t1", T2T1),
                                ("pretrained-encoder", PRETRAINED), ("cyclegan-partial", PARTIAL))}
    final = {"cyclegan-t2t1": T2T1, "pretrained-encoder": PRETRAINED,
             "cyclegan-partial": PARTIAL_FINAL}
    raw = {}
    for strategy, values in final.items():
        raw[("fid_final", strategy)] = mann_whitney(values, SCRATCH)
        raw[("kid_mean", strategy)] = mann_whitney([v / 1000 for v in values],
                                                   [v / 1000 for v in SCRATCH])
        raw[("fid_auc", strategy)] = mann_whitney(auc[strategy], auc["scratch"])
    return raw, dict(zip(raw, holm(list(raw.values()))))


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


def test_comparisons_mann_whitney_and_holm_families(tmp_path: Path) -> None:
    run = write_store(tmp_path / "run", fixture_rows())
    analysis = analyse(load_rows([run]).rows, [])
    comparisons = analysis.comparisons["phantom-2d"]
    by_key = {(c.metric, c.strategy): c for c in comparisons}
    raw, adjusted = domain_family_p()
    domain = [c for c in comparisons if c.metric in ("fid_final", "fid_auc", "kid_mean")]
    assert len(domain) == 9  # 3 metrics x 3 strategies, one Holm family
    assert not any(c.metric == "fid_best" for c in comparisons)  # optimistic: never compared
    assert {(c.metric, c.strategy): c.p for c in domain} == pytest.approx(raw)
    assert {(c.metric, c.strategy): c.p_holm for c in domain} == pytest.approx(adjusted)

    best = by_key[("fid_final", "cyclegan-t2t1")]
    assert (best.n, best.n_baseline) == (8, 8) and best.difference == pytest.approx(-10)
    assert best.high < 0 and best.p_holm < ALPHA and best.verdict == "better than scratch"
    # Separated too, and significant alone, but 3 vs 8 values do not survive Holm over 9 tests.
    partial = by_key[("fid_final", "cyclegan-partial")]
    assert (partial.n, partial.n_baseline) == (3, 8) and partial.difference == pytest.approx(-6.5)
    assert partial.high < 0 and partial.p < ALPHA <= partial.p_holm
    assert partial.verdict == HOLM_FAILS
    assert by_key[("kid_mean", "cyclegan-partial")].verdict == HOLM_FAILS
    assert by_key[("fid_final", "pretrained-encoder")].verdict == "no clear difference"

    prdc = [c for c in comparisons if c.metric in ("precision", "recall", "density", "coverage")]
    assert len(prdc) == 12
    assert [c.p_holm for c in prdc] == pytest.approx(holm([c.p for c in prdc]))
    precision = by_key[("precision", "cyclegan-t2t1")]  # higher is better
    assert precision.p == pytest.approx(mann_whitney([0.8 + s / 100 for s in range(8)], [0.6] * 8))
    assert precision.verdict == "better than scratch"
    assert not any(c.metric.startswith("inception") for c in comparisons)  # no values in 2D
    assert not any(c.verdict.startswith("worse") for c in comparisons)


def test_verdict_direction_holm_and_seed_rules() -> None:
    base = 0.60 + np.arange(8) / 100

    def family(*comparisons):
        """The comparisons with Holm-adjusted p over them, as compare_task sets it."""
        return [replace(c, p_holm=p) for c, p in zip(comparisons, holm([c.p for c in comparisons]))]

    better, worse, kid = family(compare(base + 0.2, base, "a", "scratch", "recall", True),
                                compare(base - 0.2, base, "a", "scratch", "recall", True),
                                compare(base + 0.2, base, "a", "scratch", "kid_mean", False))
    assert better.p == pytest.approx(mann_whitney(base + 0.2, base))  # 2 / C(16, 8)
    assert better.verdict == "better than scratch"
    assert worse.verdict == "worse than scratch"
    assert kid.verdict == "worse than scratch"  # lower is better
    # compare() alone has no Holm p: an interval that excludes zero is not enough.
    alone = compare(base + 0.2, base, "a", "scratch", "recall", True)
    assert alone.low > 0 and alone.p_holm is None and alone.verdict == HOLM_FAILS
    assert replace(better, p_holm=ALPHA).verdict == HOLM_FAILS  # needs p_holm below ALPHA
    assert replace(better, p_holm=ALPHA * 0.99).verdict == "better than scratch"

    # Completely separated 4 vs 4 (p = 2 / C(8, 4) = 0.029) passes alone, not in a family of 2.
    four = compare(base[:4] + 0.2, base[:4], "a", "scratch", "recall", True)
    assert four.p == pytest.approx(mann_whitney(base[:4] + 0.2, base[:4]))
    assert family(four)[0].verdict == "better than scratch"
    assert [c.verdict for c in family(four, four)] == [HOLM_FAILS] * 2
    three, = family(compare(base[:3] - 0.2, base[:3], "a", "scratch", "recall", True))
    assert three.high < 0 and three.p_holm == pytest.approx(0.1) and three.verdict == HOLM_FAILS

    equal = compare(np.full(3, 0.7), np.full(4, 0.7), "a", "scratch", "coverage", True)
    assert (equal.difference, equal.low, equal.high) == (0.0, 0.0, 0.0)
    assert replace(equal, p_holm=0.001).verdict == "no clear difference"  # interval has zero
    two = compare(base[:2] + 1, base, "a", "scratch", "recall", True)
    assert two.low is None and two.p is None and two.verdict.startswith("too few seeds")
    assert compare([], base, "a", "scratch", "recall", True).verdict == "no values to compare"


def test_report_comparison_rows(text: str) -> None:
    raw, adjusted = domain_family_p()
    best = ("fid_final", "cyclegan-t2t1")
    row = line_with(text, "| final domain FID ↓ | cyclegan-t2t1 |")
    assert "| 8 vs 8 | -10.00 |" in row and row.endswith("| better than scratch |")
    assert f"| {p_text(raw[best])} | {p_text(adjusted[best])} |" in row
    partial = ("fid_final", "cyclegan-partial")
    row = line_with(text, "| final domain FID ↓ | cyclegan-partial |")
    assert "| 3 vs 8 | -6.50 |" in row and row.endswith(f"| {HOLM_FAILS} |")
    assert f"| {p_text(raw[partial])} | {p_text(adjusted[partial])} |" in row
    assert line_with(text, "| final domain FID ↓ | pretrained-encoder |").endswith(
        "| no clear difference |")
    assert line_with(text, "| precision ↑ | cyclegan-t2t1 |").endswith("| better than scratch |")
    assert "| best domain FID ↓ | cyclegan-t2t1 |" not in text  # shown, never compared
    assert line_with(text, "| final domain FID ↓ | cyclegan-t2t1 | 2 vs 3 |").endswith(
        "| too few seeds for an interval (needs 3 a side) |")
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


def test_no_nan_or_inf_in_report_or_findings(text: str) -> None:
    assert not re.search(r"\b(nan|inf)\b", text, re.IGNORECASE)
    assert "## Findings" in text
    assert "scratch learned" in text
    assert (f"final domain FID: {HOLM_FAILS}: cyclegan-partial (-6.50); better than scratch: "
            "cyclegan-t2t1 (-10.00); no clear difference: pretrained-encoder (0.00)") in text
    # Other metrics list only verdicts that survive Holm: not cyclegan-partial's domain KID.
    assert "other metrics, cyclegan-t2t1: better than scratch on domain KID, precision." in text
    assert "other metrics, cyclegan-partial" not in text
    # Equal values (coverage 0.7 everywhere) never differ, whatever the rounding of their means.
    assert "worse than scratch" not in text.replace("better or worse than scratch", "")

    assert "cyclegan-t2t1 across tasks: better than scratch on phantom-2d (2D); too few" in text


def test_per_plane_inception_fids_share_the_missing_reason(tmp_path: Path) -> None:
    row = new_row("phantom-3d", "scratch", 0, 30.0, 300, dims=3)
    names = [k for k in row["metrics"] if k.startswith("inception_")]
    row["metrics"].update({k: None for k in names})
    row["metrics_missing"] = {k: NO_INCEPTION for k in ("inception_fid", "inception_kid_mean",
                                                        "inception_kid_std")}
    text = write_report([write_store(tmp_path / "run", [row])])["report"].read_text()
    line = line_with(text, "- inception_fid,", "inception_fid_sagittal")
    assert line.endswith(NO_INCEPTION) and "no reason recorded" not in text
