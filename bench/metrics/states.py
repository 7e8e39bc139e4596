"""The one definition of "noise", "learned", "collapsed" and "converged": the training events, the
report's baseline check and every later gate call these, never thresholds of their own.

Fidelity and modes are kept apart. "Noise" (low fidelity) works on the leading metric's position
between its floor (real validation images scored against the held-out images: what a perfect
generator gets) and its ceiling (the untrained generator): 0 at the floor, 1 at the ceiling,
whichever direction the metric improves in. "Collapsed" (lost modes) counts the known modes a
set covers where the task knows its modes (bench.metrics.modes), against what real held-out
images cover; only a task without mode labels falls back on coverage, which also falls with
blur, noise and contrast, so there a diverse set of poor images can read as collapsed.

The thresholds are calibrated on the validation suite (bench validate-metrics, quick profile,
both tasks), which checks them on every run: held-out real sets are neither noise nor
collapsed, every fake case (voxel shuffle, checkerboard, untrained generator) is noise, and the
strongest duplication (90% of a set copies of 4 images) is collapsed.
"""

from __future__ import annotations

import math

# Leading metric position from which a set scores like brain-shaped noise. The suite (quick
# profile, known-mode phantom, 5 draws) measured real sets within 0.003 of the floor, the
# nearest fake (2D voxel shuffle) at 0.024 at least: 0.015 lies between, 5x the real spread.
# Blur, contrast and distortion that keep anatomy pass it too (docs/evaluation.md): such sets
# are no closer to the real images than brain-shaped noise, by this metric.
NOISE_POSITION = 0.015
# Known modes covered below this share of what real held-out images cover is collapse. The
# suite measured real sets at 36 of 38 (2D) and 18 of 18 (3D) or more, the strongest
# duplication at 9 and 5 at most.
COLLAPSE_MODES = 0.5
# Without mode labels: coverage below this share of the real floor is collapse. The suite
# measured real sets at 0.9 of the floor or more, 90%-duplicated sets at 0.49 at most.
COLLAPSE_COVERAGE = 0.7
# Converged: over the last third of training the leading metric's position moved by at most
# this much, half of NOISE_POSITION: a curve still moving by the margin between real images and
# brain-shaped noise has not settled.
CONVERGED_MOVE = 0.0075


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


def collapsed(coverage: float | None, coverage_floor: float | None,
              modes: float | None = None, modes_floor: float | None = None) -> bool | None:
    """The samples lost modes. With known modes (`modes` covered, `modes_floor` what real
    held-out images cover): fewer than COLLAPSE_MODES of the real level. Without: too few real
    neighbourhoods covered (coverage below COLLAPSE_COVERAGE of the real level)."""
    if modes_floor is not None and math.isfinite(modes_floor) and modes_floor > 0:
        if modes is None or not math.isfinite(modes):
            return None
        return modes < COLLAPSE_MODES * modes_floor
    if coverage is None or coverage_floor is None or not coverage_floor > 0:
        return None
    return coverage < COLLAPSE_COVERAGE * coverage_floor


def by_modes(modes_floor: float | None) -> bool:
    """Whether `collapsed` decides by known modes (else by coverage) for this floor."""
    return modes_floor is not None and math.isfinite(modes_floor) and modes_floor > 0


def converged(steps: list[int], values: list[float | None], floor: float | None,
              ceiling: float | None) -> bool | None:
    """The leading metric settled: over the evaluations in the last third of the steps its
    position moved (highest minus lowest) by at most CONVERGED_MOVE. None without at least two
    such evaluations with a position."""
    if not steps:
        return None
    last = max(steps)
    start = last - (last - min(steps)) / 3
    where = [position(v, floor, ceiling) for s, v in zip(steps, values) if s >= start]
    where = [w for w in where if w is not None]
    if len(where) < 2:
        return None
    return max(where) - min(where) <= CONVERGED_MOVE
