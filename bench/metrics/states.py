"""The one definition of "noise", "learned" and "collapsed": the training events, the report's
baseline check and every later gate call these, never thresholds of their own.

Each works on a metric's position between its floor (real validation images scored against the
held-out images: what a perfect generator gets) and its ceiling (the untrained generator):
0 at the floor, 1 at the ceiling, whichever direction the metric improves in. The thresholds are
calibrated on the validation suite (bench validate-metrics, quick profile, both tasks), which
checks them on every run: held-out real sets are neither noise nor collapsed, every fake case
(voxel shuffle, checkerboard, untrained generator) is noise, and the strongest duplication
(90% of a set copies of 4 images) is collapsed.
"""

from __future__ import annotations

import math

# Leading metric position from which a set scores like brain-shaped noise. The suite measured
# real sets at 0.022 at most, the nearest fake case (2D checkerboard) at 0.097 at least.
NOISE_POSITION = 0.05
# Coverage below this share of the real floor is collapse. The suite measured real sets at 0.9
# of the floor or more, 90%-duplicated sets at 0.49 at most.
COLLAPSE_COVERAGE = 0.7


def position(value: float | None, floor: float | None, ceiling: float | None) -> float | None:
    """0 at the floor, 1 at the ceiling; None when any is missing or the two coincide."""
    if value is None or floor is None or ceiling is None:
        return None
    if not all(math.isfinite(v) for v in (value, floor, ceiling)) or ceiling == floor:
        return None
    return (value - floor) / (ceiling - floor)


def noise(value: float | None, floor: float | None, ceiling: float | None) -> bool | None:
    """The leading metric scores a set as no closer to anatomy than brain-shaped noise."""
    where = position(value, floor, ceiling)
    return None if where is None else where >= NOISE_POSITION


def learned(final: float | None, floor: float | None, ceiling: float | None) -> bool | None:
    """A generator learned when its final samples are not noise by the leading metric."""
    is_noise = noise(final, floor, ceiling)
    return None if is_noise is None else not is_noise


def collapsed(coverage: float | None, coverage_floor: float | None) -> bool | None:
    """Too few real neighbourhoods covered: the samples sit on a few modes (or on none)."""
    if coverage is None or coverage_floor is None or not coverage_floor > 0:
        return None
    return coverage < COLLAPSE_COVERAGE * coverage_floor
