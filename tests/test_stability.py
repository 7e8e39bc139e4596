"""`bench stability` at smoke size: the same draws for every strategy, recorded in rows, and a
report of health rates over draws."""

import json

import pandas as pd
import pytest

from bench.cli import PRIMARY_PAIR, main
from bench.metrics import states
from bench.plan import BASELINE, PRIMARY_STRATEGY
from bench.tuning.stability import draws
from reports.stability import health_table, unit_health


def test_draws_are_seeded_prefix_stable_and_inside_the_search_space():
    first, more = draws(3, 0), draws(5, 0)
    assert first == more[:3] and draws(3, 1) != first
    assert len({json.dumps(d, sort_keys=True) for d in more}) == 5
    for d in more:
        assert 1e-5 <= d["lr_g"] <= 1e-2 and 1e-3 <= d["r1_gamma"] <= 10
        assert d["ema_decay"] in (0.0, 0.9, 0.99, 0.999)


def test_stability_runs_the_same_draws_for_every_strategy(tmp_path, run_env):
    assert PRIMARY_PAIR.split(",") == [BASELINE, PRIMARY_STRATEGY]
    out = tmp_path / "stability"
    rc = main(["stability", "--draws", "2", "--task", "phantom-2d", "--profile", "smoke",
               "--out", str(out), "--no-progress", "--device", "cpu", "--precision", "fp32"])
    assert rc == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {(r["strategy"], r["seed"]) for r in rows} == {
        (st, k) for st in (BASELINE, PRIMARY_STRATEGY) for k in (0, 1)}
    expected = draws(2, 0)
    for r in rows:
        k = r["seed"]
        assert r["draw"] == {"index": k, "seed": 0, "params": expected[k]}
        for name, value in expected[k].items():  # the unit trained with its draw
            assert r["settings"]["harness"][name] == pytest.approx(value)
        assert r["budgets"] is None and r["tuned"] is None
        assert r["settings"]["pretext_seed"] == 0  # one pretext for every draw
    text = (out / "report.md").read_text()
    assert "## Stability over hyper-parameter draws" in text and "## The answer" not in text
    assert f"{PRIMARY_STRATEGY} − {BASELINE}:" in text
    assert (out / "figures" / "stability_phantom-2d.png").is_file()
    # A comparison run's rows and a stability study's never merge.
    other = tmp_path / "run"
    assert main(["run", "--strategy", "scratch", "--task", "phantom-2d", "--profile", "smoke",
                 "--seeds", "1", "--out", str(other), "--no-progress", "--device", "cpu",
                 "--precision", "fp32"]) == 0
    assert main(["report", str(out), str(other), "--out", str(tmp_path / "m")]) == 2


def _unit(**kw):
    base = {"status": "ok", "fid_final": 5.5, "reference.fid_floor": 5.0,
            "reference.fid_ceiling": 105.0, "coverage": 0.6, "reference.floors.coverage": 0.7}
    return pd.Series({**base, **kw})


def test_unit_health_uses_the_one_definition():
    noise_at = 5.0 + states.NOISE_POSITION * 100
    assert unit_health(_unit()) == "healthy"
    assert unit_health(_unit(fid_final=noise_at + 0.1)) == "noise"
    assert unit_health(_unit(coverage=0.7 * states.COLLAPSE_COVERAGE - 0.01)) == "collapsed"
    assert unit_health(_unit(status="diverged")) == "diverged"
    assert unit_health(_unit(coverage=None)) == "unknown"
    frame = pd.DataFrame([{**_unit(), "strategy": "scratch", "draw.index": 0,
                           "settings.dims": 2}])
    assert health_table(frame).to_dict("records") == [
        {"strategy": "scratch", "draw": 0, "health": "healthy", "value": 5.5}]


def test_bad_stability_arguments_are_one_line_errors(tmp_path, run_env, capsys):
    out = tmp_path / "s"
    for args, message in ((["--draws", "0"], "need at least 1"),
                          (["--draws", "2", "--recipe", "fancy"], "unknown recipe 'fancy'")):
        rc = main(["stability", "--profile", "smoke", "--out", str(out), "--no-progress", *args])
        err = capsys.readouterr().err
        assert rc == 2 and message in err and err.count("\n") == 1
        assert not out.exists()
