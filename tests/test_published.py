"""The published studies under results/: their reports are a pure function of their rows, and
the README's findings are the committed reports' numbers."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.metrics.states import position
from bench.plan import BASELINE, PRIMARY_METRIC, PRIMARY_STRATEGY

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"
REBUILT = ("report.md", "results.csv", "summary.csv", "comparisons.csv")
# What a study may not publish: weights, volumes and event files (see .gitignore).
UNPUBLISHED = ("checkpoints", "tensorboard", ".nii.gz")
STUDIES = sorted(p.parent.name for p in RESULTS.glob("*/results.jsonl"))
FINDINGS = "## What the benchmark found"


def _published(study: str) -> list[Path]:
    """The study's files a clean checkout holds (the rest is ignored by .gitignore)."""
    root = RESULTS / study
    return sorted(p for p in root.rglob("*") if p.is_file()
                  and not any(part in p.relative_to(root).as_posix() for part in UNPUBLISHED))


def test_studies_are_published():
    assert STUDIES, "no study under results/: the README's findings cite at least one"


@pytest.mark.parametrize("study", STUDIES)
def test_report_rebuilds_byte_for_byte(study, tmp_path, monkeypatch):
    # Rebuilt from what a clean checkout holds, under the same relative path (rows record the
    # run directory as given to `bench report`).
    for path in _published(study):
        target = tmp_path / path.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    for name in REBUILT:
        (tmp_path / "results" / study / name).unlink()
    monkeypatch.chdir(tmp_path)
    assert main(["report", f"results/{study}"]) == 0
    for name in REBUILT:
        rebuilt = (tmp_path / "results" / study / name).read_bytes()
        assert rebuilt == (RESULTS / study / name).read_bytes(), f"{study}/{name} differs"


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="not a git checkout")
@pytest.mark.parametrize("study", STUDIES)
def test_study_publishes_no_weights_or_volumes(study):
    tracked = subprocess.run(["git", "ls-files", f"results/{study}"], cwd=REPO, check=True,
                             capture_output=True, text=True).stdout.split()
    assert f"results/{study}/results.jsonl" in tracked
    assert not [name for name in tracked if any(part in name for part in UNPUBLISHED)]


def _findings() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert FINDINGS in text, f"README.md has no section {FINDINGS!r}"
    return text.split(FINDINGS, 1)[1].split("\n## ", 1)[0]


def _table_after(text: str, anchor: str) -> list[list[str]]:
    """The rows (cells stripped, header and rule dropped) of the first table after `anchor`."""
    lines = text.split(anchor, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append([cell.strip() for cell in line.strip("|").split("|")])
    return table[2:]


def _per_seed(frame: pd.DataFrame, strategy: str, metric: str) -> str:
    mine = frame[frame["strategy"] == strategy].sort_values("seed")
    return ", ".join(f"{value:.1f}" for value in mine[metric])


def primary_row(study: Path, task: str) -> list[str]:
    """The README's row for `task`, computed from the committed CSVs."""
    results = pd.read_csv(study / "results.csv")
    comparisons = pd.read_csv(study / "comparisons.csv")
    in_task = results[(results["task"] == task) & (results["status"] == "ok")]
    metric = PRIMARY_METRIC
    floor = in_task["reference.fid_floor"].iloc[0]
    ceiling = in_task["reference.fid_ceiling"].iloc[0]
    primary = comparisons[(comparisons["task"] == task) & (comparisons["family"] == "primary")]
    by_matching = primary.set_index("matching")
    baseline = in_task[in_task["strategy"] == BASELINE][metric].mean()
    return [f"`{task}`", str(int(by_matching.loc["step", "n_pairs"])),
            f"{floor:.2f} / {ceiling:.1f}",
            _per_seed(in_task, BASELINE, metric), _per_seed(in_task, PRIMARY_STRATEGY, metric),
            " / ".join(f"{by_matching.loc[m, 'diff_mean']:+.1f}" for m in ("step", "compute")),
            " / ".join(by_matching.loc[m, "verdict"] for m in ("step", "compute")),
            f"{position(baseline, floor, ceiling):.3f}"]


@pytest.mark.parametrize("study", STUDIES)
def test_readme_primary_table_is_the_committed_numbers(study):
    anchor = f"(results/{study}/report.md)"
    findings = _findings()
    assert anchor in findings, f"the README's findings do not cite results/{study}"
    rows = _table_after(findings, anchor)
    tasks = sorted(pd.read_csv(RESULTS / study / "results.csv")["task"].unique())
    assert [row[0] for row in rows] == [f"`{task}`" for task in tasks]
    for row, task in zip(rows, tasks):
        assert row == primary_row(RESULTS / study, task)


def test_readme_decimals_are_in_the_committed_reports():
    """Every decimal the findings' prose states is printed by a committed report or CSV."""
    published = "\n".join((RESULTS / study / name).read_text(encoding="utf-8")
                          for study in STUDIES for name in REBUILT)
    prose = "\n".join(line for line in _findings().splitlines() if not line.startswith("|"))
    decimals = set(re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", prose))
    assert decimals, "the findings' prose states no number"
    assert not sorted(d for d in decimals if d not in published)


def test_protocol_costs_are_what_the_harness_counts(capsys):
    """docs/real-data-protocol.md: its cost table is what its own snippet prints."""
    doc = (REPO / "docs" / "real-data-protocol.md").read_text(encoding="utf-8")
    snippet = doc.split("python - <<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0]
    exec(compile(snippet, "real-data-protocol.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    rows = _table_after(doc, "## What it costs")
    assert [row[0] for row in rows] == ["primary pair", "every strategy"] and len(printed) == 2
    for row, line in zip(rows, printed):
        seeds, per_seed, total = re.fullmatch(r"\[.*\] (\d+) \[(.*)\] (\d+) PFLOP", line).groups()
        assert [cell.split(" PFLOP")[0] for cell in row[1:3]] == per_seed.split(", ")
        assert row[3] == seeds and row[4] == f"{int(total):,} PFLOP"
        hours = [int(total) * 1e15 / (rate * 1e12) / 3600 for rate in (50, 150)]
        assert row[5] == " / ".join(f"{h:.1f}" for h in hours)
