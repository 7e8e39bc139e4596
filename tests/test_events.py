"""Divergence, mode-collapse and convergence statistics read off synthetic evaluation curves."""

import pytest

from bench.metrics.events import convergence, detect_events
from bench.profiles import get_settings
from bench.records import CurvePoint, Evaluation

S = get_settings("quick", 2)  # blow-up 3x best, accuracy 0.99; patience 2
FLOOR = 0.8  # coverage of real held-out images: collapse below 0.7 of it (states.collapsed)


def _curve(fids, acc=0.6, msssim=0.3, coverage=0.8):
    def at(value, i):
        return value[i] if isinstance(value, list) else value
    return [CurvePoint(50 * i, 0.0, 1.0, 1.0, Evaluation(
        f, metrics={"msssim": at(msssim, i), "coverage": at(coverage, i)},
        d_acc_real=at(acc, i), d_acc_fake=at(acc, i))) for i, f in enumerate(fids)]


def test_a_healthy_run_has_no_events():
    events = detect_events(_curve([6.0, 2.0, 1.0, 0.8, 0.7]), S, FLOOR, nonfinite_step=None)
    assert not events["diverged"] and not events["mode_collapse"]
    assert all(v is None for k, v in events.items() if k.endswith("_step"))


def test_fid_blowup_needs_patience_and_reports_where_it_began():
    one_spike = _curve([6.0, 1.0, 4.0, 1.1, 1.0])
    assert detect_events(one_spike, S, FLOOR, None)["fid_blowup_step"] is None
    blown = _curve([6.0, 1.0, 1.5, 3.5, 5.0, None])
    events = detect_events(blown, S, FLOOR, None)
    assert events["fid_blowup_step"] == 150 and events["diverged"]


def test_step_zero_never_counts():
    # An untrained generator with a saturated D and identical samples has not diverged or collapsed.
    curve = _curve([6.0, 2.0, 1.0], acc=[1.0, 0.5, 0.5], msssim=[0.99, 0.3, 0.3], coverage=[0.0, 0.7, 0.7])
    events = detect_events(curve, S, FLOOR, None)
    assert not events["diverged"] and not events["mode_collapse"]


def test_discriminator_saturation_and_mode_collapse():
    # 0.55 < 0.7 * 0.8 = 0.56: collapsed; 0.6 is not. MS-SSIM decides nothing.
    curve = _curve([6.0, 2.0, 1.5, 1.5, 1.5, 1.5], acc=[0.5, 0.995, 0.999, 1.0, 0.5, 0.5],
                   msssim=[0.3, 0.99, 0.99, 0.3, 0.3, 0.3],
                   coverage=[0.8, 0.55, 0.6, 0.55, 0.5, 0.8])
    events = detect_events(curve, S, FLOOR, nonfinite_step=None)
    assert events["d_saturation_step"] == 50
    assert events["coverage_collapse_step"] == 150 and "diversity_collapse_step" not in events
    assert events["diverged"] and events["mode_collapse"]
    assert not detect_events(curve, S, None, None)["mode_collapse"]  # no floor: unknown


def test_known_modes_decide_collapse_where_the_task_has_them():
    """Coverage falls (poor images) but every mode is there: no collapse; modes lost: collapse,
    recorded as lost modes, not as coverage."""
    curve = _curve([6.0, 2.0, 1.5, 1.5, 1.5], coverage=[0.8, 0.2, 0.2, 0.2, 0.2])
    for point, covered in zip(curve, [0.0, 17.0, 16.0, 17.0, 17.0]):
        point.evaluation.metrics["modes_covered"] = covered
    events = detect_events(curve, S, FLOOR, None, modes_floor=18.0)
    assert not events["mode_collapse"] and events["coverage_collapse_step"] is None
    for point, covered in zip(curve, [0.0, 17.0, 5.0, 4.0, 4.0]):
        point.evaluation.metrics["modes_covered"] = covered
    events = detect_events(curve, S, FLOOR, None, modes_floor=18.0)
    assert events["modes_collapse_step"] == 100 and events["mode_collapse"]
    assert events["coverage_collapse_step"] is None


def test_non_finite_loss_is_a_divergence_and_the_loss_row_is_not_an_evaluation():
    curve = _curve([6.0, 2.0]) + [CurvePoint(73, 0.0, float("nan"), 1.0)]
    events = detect_events(curve, S, FLOOR, nonfinite_step=73)
    assert events["nonfinite_step"] == 73 and events["diverged"]
    assert events["fid_blowup_step"] is None


def test_area_under_the_curve_is_the_mean_fid_over_the_steps():
    assert convergence(_curve([4.0, 2.0, 2.0]))["fid_auc"] == pytest.approx((3.0 + 2.0) / 2)
    assert convergence(_curve([5.0]))["fid_auc"] == 5.0
    assert convergence(_curve([None, None]))["fid_auc"] is None
