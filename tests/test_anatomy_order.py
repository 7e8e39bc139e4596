"""Anatomy before grain: the ordering check, the outline-only fake, the states' derivation from
the suite's positions, the scale a report judges rows on, and what the exit status counts."""

from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from bench.device import seeded_generator
from bench.metrics import degrade, states
from bench.metrics.domain import ROTATION_ONLY, Views, augment
from bench.metrics.registry import HIGHER, LEADING, LOWER
from bench.metrics.validate import SuiteResult, anatomy_order, calibration
from bench.records import EvaluatorReference, UnitRecord
from ground.errors import BenchError
from reports.load import _check_same_experiment


def _metric(name: str, worse: str = HIGHER, required: bool = True):
    return SimpleNamespace(name=name, worsens=worse, must_rank_anatomy=required)


def _raw(name: str, fake: float, mild: float, draws: int = 3) -> pd.DataFrame:
    """Real 0, untrained 100, every mild set at `mild`, every set without anatomy at `fake`."""
    rows = []
    for draw in range(draws):
        rows.append((name, "real", 0, 0.0, draw, 0.0))
        for check, levels in degrade.mild_levels().items():
            rows += [(name, check, lv, 0.0, draw, mild) for lv in levels]
        for check, level in degrade.WITHOUT_ANATOMY:
            rows.append((name, check, level, 1.0, draw, 100.0 if check == "untrained" else fake))
    return pd.DataFrame(rows, columns=["metric", "check", "level", "strength", "draw", "value"])


def test_ordering_fails_a_metric_that_ranks_a_fake_before_a_mild_degradation():
    passing = anatomy_order(_raw("good", fake=9.0, mild=5.0), [_metric("good")]).iloc[0]
    assert passing["passed"] and passing["held"] == 3 and passing["margin"] == pytest.approx(0.04)
    failing = anatomy_order(_raw("bad", fake=4.0, mild=5.0), [_metric("bad")]).iloc[0]
    assert not failing["passed"] and failing["held"] == 0
    assert failing["margin"] == pytest.approx(-0.01)


def test_one_draw_out_of_order_fails_the_check():
    raw = _raw("fid", fake=9.0, mild=5.0)
    raw.loc[(raw["draw"] == 1) & (raw["check"] == "filled"), "value"] = 4.0
    row = anatomy_order(raw, [_metric("fid")]).iloc[0]
    assert not row["passed"] and row["held"] == 2 and row["closest_fake"] == "filled"


def test_ordering_follows_the_metric_direction():
    # Higher is better (coverage-like): fakes must lie lower than every mild set.
    raw = _raw("cov", fake=9.0, mild=5.0).assign(value=lambda f: -f["value"])
    assert anatomy_order(raw, [_metric("cov", worse=LOWER)]).iloc[0]["passed"]


def test_noise_threshold_lies_halfway_between_mild_and_fakes():
    assert states.noise_threshold(0.054, 0.075) == pytest.approx(0.0645)
    with pytest.raises(ValueError, match="does not rank anatomy before grain"):
        states.noise_threshold(0.08, 0.07)
    assert states.CURRENT.converged == pytest.approx(states.CURRENT.noise / 2)


def test_calibration_reads_the_highest_mild_draw_and_the_lowest_fake_draw():
    positions = pd.DataFrame([("blur", 2, 1.0, 0.03, 0.02, 0.05), ("blur", 4, 2.0, 0.3, 0.2, 0.4),
                              ("shift", 1, 2.0, 0.01, 0.0, 0.02),
                              ("filled", 1, 1.0, 0.1, 0.08, 0.12),
                              ("texture", 4, 1.0, 0.2, 0.15, 0.25),
                              ("untrained", 1, 1.0, 1.0, 1.0, 1.0)],
                             columns=["check", "level", "strength", "mean", "low", "high"])
    found = calibration(positions)
    # blur 4 is no mild degradation: it does not count.
    assert found["mild_set"] == "blur 2" and found["mild_high"] == 0.05
    assert found["fake_set"] == "filled 1" and found["fakes_low"] == 0.08
    assert found["threshold"] == pytest.approx(0.065)


def test_filled_keeps_the_outline_and_removes_inner_anatomy():
    x = torch.full((2, 1, 32, 32), -1.0)
    x[:, :, 8:24, 8:24] = 0.5
    x[:, :, 14:18, 14:18] = -0.6  # a dark "ventricle" inside the brain
    pool = degrade.Pool(x, torch.zeros(2), x)
    out = degrade.filled(pool, 2, seeded_generator(0))
    inside = degrade.brain_mask(x)
    assert torch.equal(degrade.brain_mask(out), inside)  # the same outline, background -1
    assert (out[~inside] == -1).all()
    assert out[inside].std() < 0.5 * x[inside].std()  # the ventricle is smoothed away
    assert out[:, :, 15, 15].min() > -0.3


def test_renoised_views_redraw_the_grain_inside_the_head_only():
    x = torch.full((4, 1, 32, 32), -1.0)
    x[:, :, 6:26, 6:26] = 0.2
    plain = augment(x, seeded_generator(1), ROTATION_ONLY)
    noisy = augment(x, seeded_generator(1), Views("t", noise=0.3))
    outside = plain <= -1 + 1e-3
    assert (noisy[outside] == -1).all()
    assert (noisy - plain)[~outside].abs().mean() > 0.01
    blurred = augment(x, seeded_generator(1), Views("b", blur=2.0))
    assert blurred.shape == x.shape and (blurred[outside] == -1).all()


def test_rows_keep_the_scale_of_the_encoder_that_scored_them(monkeypatch):
    assert states.scale_of(["domain-resnet-v2:abc"]) is states.ROTATION_ONLY
    assert states.scale_of([]) is states.CURRENT
    assert states.scale_of(["random-conv"]) is states.ROTATION_ONLY  # the oldest rows' network
    # A newer encoder with a scale of its own: each row is judged on its own encoder's scale.
    anatomy = states.Scale("domain-resnet-v9-anatomy:", 0.06, 0.02)
    monkeypatch.setattr(states, "SCALES", (anatomy, states.ROTATION_ONLY))
    assert states.scale_of(["domain-resnet-v9-anatomy:k", None]) is anatomy
    assert states.scale_of(["domain-resnet-v3:k"]) is states.ROTATION_ONLY
    with pytest.raises(ValueError):
        states.scale_of(["domain-resnet-v3:a", "domain-resnet-v9-anatomy:b"])
    assert states.noise(3.0, 0, 100, states.ROTATION_ONLY) is True
    assert states.noise(3.0, 0, 100, anatomy) is False


def _row(unit: str, feature_net: str) -> UnitRecord:
    row = UnitRecord.from_json({"unit": unit, "task": "phantom-2d", "strategy": "scratch",
                                "seed": 0, "status": "ok"}, "test")
    row.reference = EvaluatorReference(leading="fid", feature_net=feature_net)
    row.run_dir = unit
    return row


def test_merging_rows_scored_by_different_encoders_is_refused():
    with pytest.raises(BenchError, match="leading metric and its encoder"):
        _check_same_experiment([_row("a", "domain-resnet-v3:k1"),
                                _row("b", "domain-resnet-v4-renoised:k1")])
    _check_same_experiment([_row("a", "domain-resnet-v4-renoised:k1"),
                            _row("b", "domain-resnet-v4-renoised:k1")])


def _suite(failing: list[str], anatomy_failing: bool) -> SuiteResult:
    table = pd.DataFrame([(m, "blur", "degradation", True, 0.5, 1.0, False) for m in failing],
                         columns=["metric", "check", "kind", "required", "rho", "separation",
                                  "passed"])
    anatomy = pd.DataFrame([(LEADING, True, 5, 4, -0.01, "blur 2", "filled", not anatomy_failing)],
                           columns=["metric", "required", "draws", "held", "margin",
                                    "closest_mild", "closest_fake", "passed"])
    empty = pd.DataFrame(columns=["state", "set", "expected", "draws", "hits", "passed"])
    return SuiteResult(pd.DataFrame(), table, pd.DataFrame(), empty, anatomy=anatomy, dims=2)


def test_exit_status_counts_only_what_the_registry_trusts():
    result = _suite(["kid_mean", "precision"], anatomy_failing=False)
    assert result.failures() == [] and result.unvalidated() == ["kid_mean", "precision"]
    result = _suite(["kid_mean", "coverage"], anatomy_failing=True)
    assert result.failures() == ["coverage", LEADING]
    assert result.unvalidated() == ["kid_mean"]
