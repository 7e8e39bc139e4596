"""The run store's typed records: one place reads and writes them, old rows read as they were
written, rows from a newer schema are refused."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.records import (SCHEMA, CurvePoint, Evaluation, EvaluatorReference, Tuned, UnitRecord,
                           UnitSettings)
from bench.store import RunStore
from ground.errors import BenchError

PUBLISHED = Path(__file__).resolve().parents[1] / "results" / "quick-phantom-primary" / "results.jsonl"


def _published() -> list[dict]:
    return [json.loads(line) for line in PUBLISHED.read_text().splitlines() if line.strip()]


def _record(**changes) -> UnitRecord:
    fields = dict(unit="phantom-2d/scratch/seed0", task="phantom-2d", strategy="scratch", seed=0,
                  status="ok", metrics={"fid_final": 12.5}, settings=UnitSettings(profile="quick", dims=2),
                  reference=EvaluatorReference(fid_floor=1.0, floors={"coverage": 0.7}),
                  tuned=Tuned(storage="sqlite:///t.db", study="s", trial=3, params={"lr_g": 1e-3}))
    return UnitRecord(**{**fields, **changes})


def test_a_row_from_before_schema_versions_reads_and_writes_back_unchanged():
    rows = _published()
    assert rows and all("schema" not in row for row in rows)
    for n, row in enumerate(rows, 1):
        record = UnitRecord.from_json(row, f"line {n}")
        assert record.schema == 1
        # Fields it predates are absent, not null: the published tables stay as they were.
        assert record.mode_counts is None and "mode_counts" not in record.to_json()
        assert record.to_json() == row
    first = UnitRecord.from_json(rows[0], "line 1")
    assert first.settings.profile == "quick" and first.settings.harness["steps"] == 2000
    assert first.reference.fid_floor == rows[0]["reference"]["fid_floor"]
    assert first.reference.floors["coverage"] == rows[0]["reference"]["floors"]["coverage"]


def test_a_new_record_has_every_field_and_the_current_schema():
    out = _record().to_json()
    assert out["schema"] == SCHEMA
    assert {"failure", "mode_counts", "draw", "budgets"} <= set(out)  # the same keys in every row
    assert out["settings"]["profile"] == "quick" and out["tuned"]["trial"] == 3
    assert "run_dir" not in out  # where a reader found it is not part of the row
    again = UnitRecord.from_json(json.loads(json.dumps(out)), "here")
    assert again == _record() and again.to_json() == out
    assert isinstance(again.tuned, Tuned) and again.tuned.params == {"lr_g": 1e-3}


@pytest.mark.parametrize("change, message", [
    ({"schema": SCHEMA + 1}, f"record schema {SCHEMA + 1!r}, newer than this bench reads"),
    ({"schema": True}, "record schema True is not a version number"),
    ({"colour": "blue"}, "unknown field 'colour' in UnitRecord"),
    ({"status": "done"}, "unknown status 'done'"),
    ({"task": None}, "missing task"),
    ({"settings": {"profile": "quick", "gpu_hours": 3}}, "unknown field 'gpu_hours' in UnitSettings"),
    ({"tuned": "trial 3"}, "line 1 tuned: expected a JSON object"),
])
def test_a_row_this_bench_cannot_read_is_refused_with_its_line(tmp_path, change, message):
    row = {**_record().to_json(), **change}
    store = RunStore(tmp_path)
    store.results.write_text(json.dumps(row) + "\n")
    with pytest.raises(BenchError, match="line 1") as err:
        store.rows()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bench_report_refuses_a_newer_row_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "results.jsonl").write_text(json.dumps({**_published()[0], "schema": SCHEMA + 1}) + "\n")
    assert main(["report", str(tmp_path)]) == 2
    assert "upgrade gan-init-bench" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.jsonl"]


def test_appending_keeps_older_rows_as_they_were_written(tmp_path):
    store = RunStore(tmp_path)
    old = _published()[0]
    store.results.write_text(json.dumps(old, sort_keys=True) + "\n")
    store.append(_record(unit="phantom-2d/scratch/seed5", seed=5))
    kept, new = store.results.read_text().splitlines()
    assert json.loads(kept) == old and "schema" not in json.loads(kept)
    assert json.loads(new)["schema"] == SCHEMA
    assert store.finished() == {old["unit"], "phantom-2d/scratch/seed5"}


def test_a_failed_unit_is_not_finished_and_is_replaced_by_its_rerun(tmp_path):
    store = RunStore(tmp_path)
    store.append(_record(status="failed", failure="error", reason="RuntimeError: boom"))
    assert store.finished() == set()
    store.append(_record())
    assert store.finished() == {"phantom-2d/scratch/seed0"} and len(store.rows()) == 1


def test_the_leading_metric_is_stored_and_shown_under_its_registered_name():
    from bench.metrics.events import EVENTS, convergence
    from bench.metrics.registry import LEADING, LOWER, REGISTRY, lead
    from bench.plan import PRIMARY_METRIC
    from bench.store import CURVE_COLUMNS
    from reports.catalog import BY_NAME, bound_columns

    entry = REGISTRY[LEADING]
    assert entry.better == LOWER  # the curve's best is its minimum; a blow-up rises above it
    assert PRIMARY_METRIC == f"{LEADING}_final" and LEADING in CURVE_COLUMNS
    assert BY_NAME[PRIMARY_METRIC].label == f"final {entry.label}"
    assert BY_NAME[PRIMARY_METRIC].better == entry.better
    assert bound_columns(PRIMARY_METRIC) == (f"reference.{lead('floor')}", f"reference.{lead('ceiling')}")
    assert {f.name for f in dataclasses.fields(EvaluatorReference)} >= {lead("floor"), lead("ceiling")}
    assert lead("blowup_step") in EVENTS
    curve = [CurvePoint(0, 0.0, evaluation=Evaluation(4.0)), CurvePoint(10, 0.0, evaluation=Evaluation(2.0))]
    assert convergence(curve) == {lead("auc"): 3.0}
    assert curve[0].row()[LEADING] == 4.0


def test_a_curve_point_round_trips_through_its_row_as_checkpoints_keep_it():
    evaluation = Evaluation(3.5, None, {"coverage": 0.4, "modes_covered": 12.0}, 0.7, 0.6)
    point = CurvePoint(200, 12.5, 0.9, 1.1, evaluation)
    row = point.row()
    assert list(row) == ["step", "seconds", "loss_g", "loss_d", "fid", "coverage", "modes_covered",
                         "d_acc_real", "d_acc_fake"]
    assert CurvePoint.from_row(row) == point
    closing = CurvePoint(237, 13.0, float("inf"), 1.0)  # a divergence's: losses only
    assert closing.row() == {"step": 237, "seconds": 13.0, "loss_g": float("inf"), "loss_d": 1.0,
                             "fid": None}
    assert CurvePoint.from_row(closing.row()).evaluation is None and closing.get("fid") is None
    missing = CurvePoint(0, 0.0, evaluation=Evaluation(None, "the generated images are not finite"))
    assert CurvePoint.from_row(missing.row()) == missing
    assert point.get("coverage") == 0.4 and point.get("d_acc_fake") == 0.6
    assert point.get("loss_g") == 0.9 and closing.get("step") == 237


def test_a_failed_unit_records_what_ran_and_why_not_what_only_training_gives(tmp_path):
    from bench.unit.record import TRAINED_ONLY
    record = _record(status="failed", failure="error", reason="RuntimeError: boom", metrics={})
    record.omit(*TRAINED_ONLY)
    out = record.to_json()
    assert set(out) == {"unit", "task", "strategy", "seed", "status", "schema", "failure", "reason",
                        "diverged_step", "metrics", "metrics_missing", "settings", "versions",
                        "hardware", "tuned", "draw", "finished_at"}
    record.steps = 12  # set after it was left out: written after all
    assert record.to_json()["steps"] == 12


def test_a_field_set_on_an_older_row_is_written_and_the_rest_stay_as_read():
    row = _published()[0]
    record = UnitRecord.from_json(row, "line 1")
    record.mode_counts = {"counts": [1, 2]}
    assert record.to_json() == {**row, "mode_counts": {"counts": [1, 2]}}


def test_rows_an_older_checkpoint_kept_read_back_as_they_were():
    evaluation = {"step": 0, "seconds": 0.1, "loss_g": None, "loss_d": None, "fid": 210.0,
                  "msssim": 0.3, "coverage": 0.01, "d_acc_real": 1.0, "d_acc_fake": 0.0}
    closing = {"step": 37, "seconds": 3.2, "fid": None, "loss_g": float("nan"), "loss_d": 0.7}
    assert CurvePoint.from_row(evaluation).evaluation.metrics == {"msssim": 0.3, "coverage": 0.01}
    assert CurvePoint.from_row(closing).evaluation is None
    for row in (evaluation, closing):
        assert CurvePoint.from_row(row).row() == row
