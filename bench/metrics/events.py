"""Training statistics of one unit, read off its evaluation curve: divergence, mode collapse and
convergence. A pure function of the curve, so a resumed unit gets the same numbers.

Every event needs `*_patience` evaluations in a row, so one noisy evaluation is not an event; its
step is the first evaluation of that row. Step 0 (the initialized, untrained generator) never
counts: a generator that starts out producing near-identical images has not collapsed.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.integrate import trapezoid

from bench.metrics import states
from bench.metrics.registry import LEADING, lead
from bench.profiles import Settings
from bench.records import CurvePoint

EVENTS = ("nonfinite_step", lead("blowup_step"), "d_saturation_step", "modes_collapse_step",
          "coverage_collapse_step")


def _first_run(curve: list[CurvePoint], hit: Callable[[CurvePoint, int], bool],
               patience: int) -> int | None:
    """Step at which `hit` starts holding for `patience` evaluations in a row (after step 0)."""
    run_start, run_length = None, 0
    for i, point in enumerate(curve):
        if point.step == 0 or not hit(point, i):
            run_start, run_length = None, 0
            continue
        run_start = point.step if run_start is None else run_start
        run_length += 1
        if run_length >= patience:
            return run_start
    return None


def _value(point: CurvePoint, column: str) -> float | None:
    value = point.get(column)
    return None if value is None or not np.isfinite(value) else float(value)


def evaluations(curve: list[CurvePoint]) -> list[CurvePoint]:
    """The curve's evaluations: the point appended when a unit diverges records its losses
    only."""
    return [p for p in curve if p.evaluation is not None]


def detect_events(curve: list[CurvePoint], s: Settings, coverage_floor: float | None,
                  nonfinite_step: int | None, modes_floor: float | None = None) -> dict:
    """First step of each divergence and mode-collapse event (None when it never happened).
    Collapse is bench.metrics.states.collapsed: on the curve's known modes covered against what
    real held-out images cover (`modes_floor`) where the task knows its modes
    (modes_collapse_step), else on its coverage against theirs (coverage_collapse_step).
    MS-SSIM among samples is recorded in the curve but decides nothing: it failed the
    validation suite's duplication check."""
    evaluated = evaluations(curve)
    best = [min((f for p in evaluated[:i] if (f := _value(p, LEADING)) is not None), default=None)
            for i in range(len(evaluated))]

    def blowup(point: CurvePoint, i: int) -> bool:
        fid = _value(point, LEADING)
        # Non-finite images after a finite start are a blow-up too.
        return best[i] is not None and (fid is None or fid > s.blowup_factor * best[i])

    def saturated(point: CurvePoint, _: int) -> bool:
        real, fake = _value(point, "d_acc_real"), _value(point, "d_acc_fake")
        return real is not None and fake is not None and min(real, fake) >= s.saturation_accuracy

    def lost_modes(point: CurvePoint, _: int) -> bool:
        return bool(states.collapsed(_value(point, "coverage"), coverage_floor,
                                     _value(point, "modes_covered"), modes_floor))

    collapse = _first_run(evaluated, lost_modes, s.collapse_patience)
    by_modes = states.by_modes(modes_floor)

    events = {
        "nonfinite_step": nonfinite_step,
        lead("blowup_step"): _first_run(evaluated, blowup, s.blowup_patience),
        "d_saturation_step": _first_run(evaluated, saturated, s.saturation_patience),
        "modes_collapse_step": collapse if by_modes else None,
        "coverage_collapse_step": None if by_modes else collapse,
    }
    events["diverged"] = any(events[k] is not None for k in EVENTS[:3])
    events["mode_collapse"] = any(events[k] is not None for k in EVENTS[3:])
    return events


def convergence(curve: list[CurvePoint]) -> dict:
    """Area under the FID curve, as the mean FID over the steps it spans (comparable across
    budgets), from the evaluations with a finite FID."""
    points = [(p.step, f) for p in curve if (f := _value(p, LEADING)) is not None]
    if len(points) < 2:
        return {lead("auc"): points[0][1] if points else None}
    steps, fids = np.array(points, dtype=float).T
    return {lead("auc"): float(trapezoid(fids, steps) / (steps[-1] - steps[0]))}
