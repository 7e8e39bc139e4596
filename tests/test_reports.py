"""reports/: loading and merging run stores, results.csv, report.md on rows of an older harness
(only the four domain-FID metrics, no events). The full schema: test_report_statistics.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from scipy import stats

from ground.errors import BenchError
from reports import load_results, write_report
from reports.comparisons import PairedComparison


def make_row(task: str = "phantom-2d", strategy: str = "scratch", seed: int = 0,
             fid_final: float | None = 20.0, status: str = "ok",
             fingerprint: str = "fp-a", profile: str = "quick", **extra: Any) -> dict[str, Any]:
    """A results.jsonl row shaped like the harness writes it."""
    slug = f"{task}__{strategy}__seed{seed}"
    row: dict[str, Any] = {
        "unit": f"{task}/{strategy}/seed{seed}", "task": task, "strategy": strategy,
        "seed": seed, "status": status, "reason": None, "diverged_step": None,
        "steps": 600, "seconds": 55.2,
        "metrics": {"fid_final": fid_final,
                    "fid_best": None if fid_final is None else fid_final - 1,
                    "fid_best_step": None if fid_final is None else 400, "fid_init": 250.0},
        "metrics_missing": {},
        "reference": {"fid_floor": 1.2, "fid_ceiling": 2000.0, "fid_samples": 480,
                      "feature_net": "random-conv"},
        "transfer": {"stem": 0, "encoder": 0, "residual": 0, "decoder": 0, "discriminator": 0,
                     "total": 0 if strategy == "scratch" else 1000, "g_parameters": 4000},
        "pretexts": {} if strategy == "scratch" else {
            "cyclegan": {"key": "ab12", "steps": 800, "seconds": 70.1, "ssim": 0.81, "psnr": 22.0}},
        "settings": {"profile": profile, "device": "cpu", "precision": "bf16",
                     "data_fingerprint": fingerprint, "data_seed": 0, "pretext_seed": 0,
                     "image_size": 64, "dims": 2, "batch_size": 32, "steps": 600},
        "versions": {"python": "3.11.7", "torch": "2.13.0", "monai": "1.6.1", "bench": "0.1.0"},
        "hardware": {"cpu": "test-cpu", "threads": 2, "gpu": None},
        "files": {"curve": f"curves/{slug}.csv", "samples": f"samples/{slug}.png",
                  "samples_nifti": None},
        "finished_at": "2026-11-25T10:00:00Z",
    }
    row.update(extra)
    return row


def diverged_row(**kw: Any) -> dict[str, Any]:
    reason = "non-finite loss_g at step 37"
    row = make_row(fid_final=None, status="diverged", reason=reason, diverged_step=37, **kw)
    row["metrics"]["fid_best"] = 80.0
    row["metrics_missing"] = {"fid_final": reason}
    return row


def write_run(run_dir: Path, rows: list[dict[str, Any]], curves: bool = False) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for row in rows:
        (run_dir / "samples").mkdir(exist_ok=True)
        (run_dir / row["files"]["samples"]).write_bytes(b"png")
        if curves:
            (run_dir / "curves").mkdir(exist_ok=True)
            final = row["metrics"]["fid_final"] or 90.0
            (run_dir / row["files"]["curve"]).write_text(
                f"step,seconds,fid,loss_g,loss_d\n0,0,250,1,1\n100,5,,1,1\n600,30,{final},1,1\n")
    return run_dir


def seeds_rows(strategy: str, fids: list[float], **kw: Any) -> list[dict[str, Any]]:
    return [make_row(strategy=strategy, seed=i, fid_final=f, **kw) for i, f in enumerate(fids)]


@pytest.fixture
def run(tmp_path: Path) -> Path:
    rows = (seeds_rows("scratch", [20.0, 22.0, 21.0])
            + seeds_rows("cyclegan-t2t1", [10.0, 11.0])
            + [diverged_row(strategy="cyclegan-t2t1", seed=2)])
    return write_run(tmp_path / "run", rows, curves=True)


def test_results_csv_one_row_per_unit_flattened_and_sorted(run: Path) -> None:
    paths = write_report([run])
    assert paths["csv"] == run / "results.csv" and paths["report"] == run / "report.md"
    table = pd.read_csv(paths["csv"])
    assert len(table) == 6
    for column in ("unit", "task", "strategy", "seed", "status", "fid_final", "fid_best",
                   "fid_init", "reference.fid_floor", "settings.data_fingerprint",
                   "transfer.total", "pretexts.cyclegan.ssim", "files.samples",
                   "metrics_missing.fid_final"):
        assert column in table.columns, column
    assert list(table["strategy"]) == ["cyclegan-t2t1"] * 3 + ["scratch"] * 3
    assert list(table["seed"]) == [0, 1, 2, 0, 1, 2]
    assert table["fid_final"].isna().sum() == 1  # the diverged unit: missing, not a number
    assert not list(run.glob(".*.tmp"))  # atomic writes leave no temporary files behind


def test_report_shows_strategies_reference_divergence_and_missing(run: Path) -> None:
    text = write_report([run])["report"].read_text()
    assert "| scratch |" in text and "| cyclegan-t2t1 |" in text
    assert "real val vs real test (floor): 1.20; untrained generator (ceiling): 2,000.00" in text
    assert "| cyclegan-t2t1 | 3 | 2 / 1 / 0 |" in text  # seeds, ok / diverged / failed
    assert "diverged at step 37: non-finite loss_g at step 37" in text
    assert "- fid_final (`phantom-2d/cyclegan-t2t1/seed2`): non-finite loss_g at step 37" in text
    diverged_line = next(l for l in text.splitlines() if l.startswith("| cyclegan-t2t1 | 2 |"))
    assert "| diverged | — |" in diverged_line
    assert "(n=2 of 3)" in text  # final FID mean over the seeds that have one
    assert "[png](samples/phantom-2d__scratch__seed0.png)" in text
    assert "phantom-2d](figures/fid_phantom-2d.png)" in text
    assert (run / "figures" / "fid_phantom-2d.png").is_file()
    assert text.index("## The answer") < text.index("## Set-up") < text.index("## Other findings")
    assert "scratch learned" in text
    assert "Warning: cyclegan-t2t1 has only 2 seed(s)" in text
    assert "Profile: quick" in text and "PSNR" in text and "0.810" in text


def test_missing_metric_never_printed_as_number(tmp_path: Path) -> None:
    row = make_row()
    row["metrics"]["fid_init"] = None
    row["metrics_missing"] = {"fid_init": "feature net unavailable"}
    text = write_report([write_run(tmp_path / "r", [row])])["report"].read_text()
    assert "- fid_init (`phantom-2d/scratch/seed0`): feature net unavailable" in text
    assert "| 20.00 | 19.00 (step 400) | — |" in text


def test_verdict_needs_interval_and_holm() -> None:
    base = dict(task="t", strategy="b", metric="fid_final", family="primary", matching="step",
                higher_is_better=False, n_pairs=5, diff_mean=-10.0, ci_low=-12.0, ci_high=-8.0,
                p=0.0625)
    assert PairedComparison(**base, p_holm=0.04).verdict == "better"
    # The interval alone is not enough: the Holm-adjusted paired test must agree.
    unclear = PairedComparison(**base, p_holm=0.05)
    assert unclear.verdict == "no clear difference" and "Holm p" in unclear.why
    assert PairedComparison(**{**base, "higher_is_better": True}, p_holm=0.01).verdict == "worse"
    overlap = PairedComparison(**{**base, "ci_high": 1.0}, p_holm=0.01)
    assert overlap.verdict == "no clear difference" and overlap.why == "the interval includes zero"
    held = PairedComparison(**base, p_holm=0.01, withheld="scratch did not learn")
    assert held.verdict == "no verdict" and held.why == "scratch did not learn"
    few = PairedComparison(**{**base, "n_pairs": 2, "ci_low": None, "ci_high": None})
    assert few.verdict == "no verdict" and "needs 3" in few.why


def test_report_comparison_rows(tmp_path: Path) -> None:
    rows = (seeds_rows("scratch", [20.0, 22.0, 21.0, 23.0, 19.0])
            + seeds_rows("cyclegan-t2t1", [10.0, 12.0, 11.0, 13.0, 9.0])
            + seeds_rows("pretrained-encoder", [21.0, 19.0, 22.0, 20.0, 23.0])
            + seeds_rows("cyclegan-partial", [15.0]))
    paths = write_report([write_run(tmp_path / "r", rows)])
    text = paths["report"].read_text()
    def row(strategy: str, matching: str = "step") -> str:
        return next(l for l in text.splitlines()
                    if l.startswith(f"| final domain FID ↓ | {strategy} | {matching} |"))

    line = row("cyclegan-t2t1")
    # Improved on all 5 seeds: the exact paired p 2/32 is the smallest 5 pairs can give, and
    # Holm over the two primary tests doubles it.
    assert "| primary | 5 | -10.00 |" in line and "| 0.062 | 0.125 |" in line
    assert line.endswith("| no clear difference: the interval excludes zero, but Holm p ≥ 0.05 |")
    assert "no verdict: no scratch values at cyclegan-t2t1's compute budget" in row(
        "cyclegan-t2t1", "compute")
    assert "| secondary |" in row("pretrained-encoder")
    assert row("cyclegan-partial").endswith("seed(s) 1, 2, 3, 4 of cyclegan-partial missing: "
                                            "finish the run |")
    csv = pd.read_csv(paths["comparisons"])
    assert list(csv.columns[:14]) == ["task", "strategy", "baseline", "metric", "family",
                                      "matching", "n_pairs", "n_diverged", "diff_mean", "ci_low",
                                      "ci_high", "p", "p_holm", "verdict"]
    primary = csv[(csv["family"] == "primary")]
    assert set(primary["strategy"]) == {"cyclegan-t2t1"} and set(primary["matching"]) == {
        "step", "compute"}


def test_older_rows_show_missing_metrics_without_nan(tmp_path: Path) -> None:
    """Rows without the newer metrics, events or real samples still give a complete report."""
    rows = (seeds_rows("scratch", [20.0, 22.0, 21.0])
            + seeds_rows("cyclegan-t2t1", [10.0, 11.0, 9.0]))
    paths = write_report([write_run(tmp_path / "r", rows, curves=True)])
    text = paths["report"].read_text()
    assert not re.search(r"\b(nan|inf)\b", text, re.IGNORECASE)
    assert "| Inception FID ↓ | — | — |" in text
    assert "inception_fid" in text and "no reason recorded (older harness" in text
    assert "| scratch | 0 | 0 | — | none |" in text  # mode collapse: no events recorded
    assert "is unreadable; left out of the phantom-2d figure" in text  # the fake sample PNGs
    summary = pd.read_csv(paths["summary"]).set_index(["strategy", "metric"])
    assert summary.loc[("scratch", "divergence_rate"), "n"] == 3
    assert summary.loc[("scratch", "mode_collapse_rate"), "n"] == 0
    assert summary.loc[("scratch", "inception_fid"), "interval"] == "none"


def test_merge_two_dirs(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", seeds_rows("scratch", [20.0, 21.0]))
    b = write_run(tmp_path / "b", [make_row(strategy="scratch", seed=2, fid_final=22.0)])
    out = tmp_path / "merged"
    paths = write_report([a, b], out_dir=out)
    assert paths["report"].parent == out
    assert list(load_results([a, b])["seed"]) == [0, 1, 2]
    text = paths["report"].read_text()
    assert "[png](../b/samples/phantom-2d__scratch__seed2.png)" in text
    assert "`../a`, `../b`" in text


def test_merge_refuses_different_fingerprint(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", [make_row(seed=0)])
    b = write_run(tmp_path / "b", [make_row(seed=1, fingerprint="fp-b")])
    with pytest.raises(BenchError, match=r"data_fingerprint of task phantom-2d.*fp-a.*fp-b"):
        load_results([a, b])


def test_merge_refuses_different_profile(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", [make_row(seed=0)])
    b = write_run(tmp_path / "b", [make_row(seed=1, profile="full")])
    with pytest.raises(BenchError, match=r"profile.*a.*'quick'.*b.*'full'"):
        write_report([a, b])


@pytest.mark.parametrize("key, label", [("domain_weights", "domain encoder weights"),
                                        ("inception_net", "Inception network")])
def test_merge_refuses_different_reference_nets(tmp_path: Path, key: str, label: str) -> None:
    def row(seed: int, value: str, task: str = "phantom-2d") -> dict[str, Any]:
        made = make_row(task=task, seed=seed)
        made["reference"][key] = value
        return made

    # Another task may use other nets, and equal values merge.
    a = write_run(tmp_path / "a", [row(0, "net-a"), row(0, "net-x", task="phantom-3d")])
    same = write_run(tmp_path / "same", [row(1, "net-a")])
    assert list(load_results([a, same])["seed"]) == [0, 1, 0]
    # Rows that differ only in this reference net, for the same task, are refused.
    b = write_run(tmp_path / "b", [row(1, "net-b")])
    with pytest.raises(BenchError, match=rf"different {label} of task phantom-2d\b.*: "
                                         r".*\ba\b has 'net-a', .*\bb\b has 'net-b'"):
        load_results([a, b])


def _changed(row: dict[str, Any], change: str) -> dict[str, Any]:
    if change == "precision":
        row["settings"]["precision"] = "fp32"
    elif change == "device":
        row["settings"]["device"] = "cuda:0"
    elif change == "recipe":
        row["settings"]["recipe"] = "stabilized"  # rows without one trained with plain
    elif change == "pretext":
        row["pretexts"]["cyclegan"]["weights"] = "other-weights"
    elif change == "tuned":
        row["tuned"] = {"storage": "sqlite:///t.db", "study": "quick/phantom-2d/cyclegan-t2t1",
                        "trial": 3, "params": {}}
    return row


@pytest.mark.parametrize("change, message", [
    ("precision", r"different precision \(give every shard the same --precision bf16 or fp32\): "
                  r".*'bf16'.*'fp32'"),
    ("device", r"different device type: .*'cpu'.*'cuda'"),
    ("recipe", r"different training recipe \(--recipe\): .*'plain'.*'stabilized'"),
    ("pretext", r"different cyclegan pretext weights of task phantom-2d, seed 0 .*'w0'.*'other-weights'"),
    ("tuned", r"different tuning source of cyclegan-t2t1 on phantom-2d: .*'untuned'.*trial 3")])
def test_merge_refuses_mixed_harness_pretexts_or_tuning(tmp_path: Path, change: str,
                                                        message: str) -> None:
    def row(seed: int) -> dict[str, Any]:
        made = make_row(strategy="cyclegan-t2t1", seed=seed)
        made["pretexts"]["cyclegan"].update(seed=0, weights="w0")  # a shared pretext
        return made

    a = write_run(tmp_path / "a", [row(0)])
    assert len(load_results([a, write_run(tmp_path / "same", [row(1)])])) == 2
    b = write_run(tmp_path / "b", [_changed(row(1), change)])
    with pytest.raises(BenchError, match=message):
        load_results([a, b])
    # A failed unit never trained: it carries the untuned harness, and still merges.
    failed = row(2)
    failed.update(status="failed", reason="RuntimeError: out of memory")
    failed["settings"]["harness"] = {"lr_g": 1.0}
    row1 = row(1)
    row1["settings"]["harness"] = {"lr_g": 2.0}
    first = row(0)
    first["settings"]["harness"] = {"lr_g": 2.0}
    assert len(load_results([write_run(tmp_path / "h0", [first, row1]),
                             write_run(tmp_path / "h1", [failed])])) == 3
    # Per-seed pretexts hold different weights by design: another seed's pretext merges.
    if change == "pretext":
        other = row(1)
        other["pretexts"]["cyclegan"].update(seed=1, weights="w1")
        assert len(load_results([a, write_run(tmp_path / "seed1", [other])])) == 2


def test_merge_refuses_duplicate_unit(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", [make_row(seed=0)])
    b = write_run(tmp_path / "b", [make_row(seed=0)])
    with pytest.raises(BenchError, match=r"phantom-2d/scratch/seed0.*\ba\b.*\bb\b"):
        load_results([a, b])


def test_duplicate_row_in_one_file_keeps_last_and_warns(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", [make_row(fid_final=30.0), make_row(fid_final=25.0)])
    with pytest.warns(UserWarning, match="appears more than once"):
        table = load_results([run])
    assert list(table["fid_final"]) == [25.0]


def test_missing_or_empty_results(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match=r"no results in .*nothing: run `bench run"):
        write_report([tmp_path / "nothing"])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "results.jsonl").write_text("\n")
    with pytest.raises(BenchError, match="no results in"):
        load_results([tmp_path / "empty"])


def test_corrupt_line_names_file_and_line(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", [make_row()])
    with (run / "results.jsonl").open("a") as handle:
        handle.write('{"unit": "half a line\n')
    with pytest.raises(BenchError, match=r"results\.jsonl line 2 is not valid JSON"):
        load_results([run])
    assert not (run / "report.md").exists()


def tuned(effort: dict[str, Any]) -> dict[str, Any]:
    """The `tuned` record `bench run --tuned` writes for cyclegan-t2t1's study."""
    return {"storage": "sqlite:///tune.db", "study": "quick/phantom-2d/cyclegan-t2t1",
            "trial": 3, "value": 14.5, "params": {"lr_g": 0.0003}, "effort": effort}


EFFORT = {"trials": 5, "complete": 2, "pruned": 1, "fail": 2, "diverged": 1, "retried": 0,
          "train_seconds": 12.5}


def tuned_report(tmp_path: Path, effort: dict[str, Any]) -> tuple[str, pd.DataFrame]:
    """scratch untuned (tuned: null, as the harness writes it), cyclegan-t2t1 tuned."""
    rows = (seeds_rows("scratch", [20.0, 22.0, 21.0], tuned=None)
            + seeds_rows("cyclegan-t2t1", [10.0, 11.0, 9.0], tuned=tuned(effort)))
    paths = write_report([write_run(tmp_path / "r", rows)])
    return paths["report"].read_text(), pd.read_csv(paths["summary"])


def divergence_table(text: str) -> list[str]:
    start = text.index("Divergence (training stopped")
    return text[start:text.index("Mode collapse (", start)].splitlines()


def test_tuning_divergence_column_and_summary(tmp_path: Path) -> None:
    text, summary = tuned_report(tmp_path, EFFORT)
    lines = divergence_table(text)
    assert "| rate (95% Wilson CI) | tuning trials diverged | events (first step) |" in lines[2]
    t2t1 = next(l for l in lines if l.startswith("| cyclegan-t2t1 |"))
    assert "| 1 / 5 (20%, 95% Wilson CI 4–62%) |" in t2t1  # diverged trials / counted trials
    assert "| not tuned |" in next(l for l in lines if l.startswith("| scratch |"))
    assert "tuning trials diverged" not in text[text.index("Mode collapse ("):]
    assert "| quick/phantom-2d/cyclegan-t2t1 #3 |" in text and "| 2 / 1 / 2 (1) | 12.5 |" in text
    rate = summary.set_index(["strategy", "metric"]).loc[("cyclegan-t2t1",
                                                          "tuning_divergence_rate")]
    wilson = stats.binomtest(1, 5).proportion_ci(method="wilson")
    assert rate["n"] == 5 and rate["mean"] == pytest.approx(0.2) and rate["interval"] == "wilson"
    assert (rate["ci_low"], rate["ci_high"]) == pytest.approx((wilson.low, wilson.high))
    assert list(summary.query("metric == 'tuning_divergence_rate'")["strategy"]) == [
        "cyclegan-t2t1"]  # scratch ran untuned: no row


def test_tuning_effort_of_an_older_harness_is_unknown(tmp_path: Path) -> None:
    older = {k: v for k, v in EFFORT.items() if k not in ("trials", "diverged", "retried")}
    text, summary = tuned_report(tmp_path, older)
    t2t1 = next(l for l in divergence_table(text) if l.startswith("| cyclegan-t2t1 |"))
    assert t2t1.endswith("| — | none |")
    assert "| 2 / 1 / 2 (—) | 12.5 |" in text
    assert not re.search(r"\b(nan|inf)\b", text, re.IGNORECASE)
    rate = summary.set_index(["strategy", "metric"]).loc[("cyclegan-t2t1",
                                                          "tuning_divergence_rate")]
    assert rate["n"] == 0 and rate["interval"] == "none" and pd.isna(rate["mean"])


def test_retried_trial_records_are_mentioned(tmp_path: Path) -> None:
    text, _ = tuned_report(tmp_path, {**EFFORT, "retried": 2})
    assert "| 2 / 1 / 2 (1), 2 retried | 12.5 |" in text


def test_untuned_divergence_table_unchanged(run: Path) -> None:
    paths = write_report([run])
    lines = divergence_table(paths["report"].read_text())
    assert lines[0] == ("Divergence (training stopped, or a non-finite loss, FID blow-up or "
                        "saturated discriminator was detected; units that ran):")
    assert lines[2] == ("| strategy | units counted | units with event | rate (95% Wilson CI) "
                        "| events (first step) |")
    assert "tuning" not in paths["report"].read_text()
    assert "tuning_divergence_rate" not in set(pd.read_csv(paths["summary"])["metric"])


def test_the_baseline_check_uses_the_one_definition_of_learned(tmp_path: Path) -> None:
    """Position 0.2 of the way from floor to ceiling scores like brain-shaped noise."""
    from bench.metrics import states
    final = 1.2 + 0.2 * (2000.0 - 1.2)
    assert states.learned(final, 1.2, 2000.0) is False
    rows = [make_row(strategy="scratch", seed=i, fid_final=final) for i in range(3)]
    text = write_report([write_run(tmp_path / "r", rows)])["report"].read_text()
    assert "scratch did not learn: its mean final domain FID" in text
    assert "at 0.200 of the way from the real floor 1.20 to the untrained ceiling 2,000.00" in text


def test_setup_gives_gan_throughput_and_evaluation_share(tmp_path: Path) -> None:
    def timed(strategy: str, seed: int, seconds: float, trained: float, final: float,
              extension: float | None = None) -> dict[str, Any]:
        compute = {"gan_flops": 2e12, "gan_seconds": trained, "final_metrics_seconds": final}
        if extension is not None:
            compute["extension"] = {"seconds": extension}
        return make_row(strategy=strategy, seed=seed, seconds=seconds, compute=compute)

    # Evaluation shares: (100 - 10 - 60) / 90 = 1/3; (130 - 10 - 60 - 30) / 120 = 1/4.
    rows = [timed("cyclegan-t2t1", 0, 100.0, 60.0, 10.0),
            *(timed("scratch", i, 130.0, 60.0, 10.0, 30.0) for i in (0, 1))]
    text = write_report([write_run(tmp_path / "run", rows)])["report"].read_text()
    assert "GFLOP/s: phantom-2d 33." in text  # 2e12 FLOPs over 60 s
    assert "the final metrics excepted), median over units: phantom-2d 25%." in text
    older = [make_row(strategy="cyclegan-t2t1", seed=i,
                      compute={"gan_flops": 2e12, "gan_seconds": 60.0}) for i in (0, 1)]
    text = write_report([write_run(tmp_path / "older", older)])["report"].read_text()
    assert "GFLOP/s: phantom-2d 33." in text and "final metrics excepted" not in text


def test_recipe_values_are_given_per_task_where_they_differ(tmp_path: Path) -> None:
    rows = []
    for task, weight in (("phantom-2d", 1.0), ("phantom-3d", 0.2)):
        for seed in (0, 1):
            row = make_row(task=task, seed=seed)
            row["settings"].update(recipe="stabilized",
                                   harness={"mbstd_group": 4, "mode_seeking": weight})
            rows.append(row)
    text = write_report([write_run(tmp_path / "run", rows)])["report"].read_text()
    assert ("Training recipe: stabilized (mbstd_group 4, mode_seeking phantom-2d 1.0 / "
            "phantom-3d 0.2)") in text
