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
from dataclasses import dataclass


def noise_threshold(mild_high: float, fakes_low: float) -> float:
    """Where "noise" starts on the leading metric's scale: halfway between the highest position
    any mild degradation reached on any draw and the lowest any set without anatomy reached
    (bench.metrics.validate.calibration). A metric whose two ranges overlap cannot tell anatomy
    from grain, and no threshold on it can: ValueError."""
    if not fakes_low > mild_high:
        raise ValueError(f"the sets without anatomy reach {fakes_low:.3f}, no farther than the "
                         f"mild degradations' {mild_high:.3f}: the metric does not rank anatomy "
                         "before grain")
    return (mild_high + fakes_low) / 2


@dataclass(frozen=True)
class Scale:
    """The thresholds on one leading metric's floor-to-ceiling scale, calibrated for the encoder
    that scored the rows (their reference's feature_net starts with `encoder`): where "noise"
    starts, the smallest effect of interest between two generators, and "converged" (a curve
    still moving by half the noise margin has not settled)."""

    encoder: str
    noise: float
    smallest_effect: float

    @property
    def converged(self) -> float:
        return self.noise / 2


# The thresholds of the rotation-only encoders (domain-resnet v1 to v3, v4 on rotation views,
# and any older feature network: every encoder without a scale of its own), calibrated before
# the anatomy check existed: noise from 0.015, five times the real sets' spread and below every
# fake of their suite. The anatomy check fails these encoders (mild degradations reach the
# fakes' positions, docs/evaluation.md); a leading metric that passes it gets a Scale of its own,
# derived with noise_threshold from its suite's calibration.
ROTATION_ONLY = Scale("", 0.015, 0.015)
# Every calibrated scale, the most specific encoder prefix first; CURRENT is the leading
# encoder's (bench.metrics.domain.LEADING_VIEWS).
SCALES = (ROTATION_ONLY,)
CURRENT = ROTATION_ONLY
NOISE_POSITION, CONVERGED_MOVE = CURRENT.noise, CURRENT.converged


def scale_of(feature_nets) -> Scale:
    """The scale of rows scored by these encoders (their reference.feature_net; missing ones
    are skipped): CURRENT when none is known. Rows of one report share one encoder family
    (reports.load refuses merging others): ValueError for rows of two scales."""
    names = [n for n in feature_nets if isinstance(n, str) and n]
    if not names:
        return CURRENT
    found = {next((s for s in SCALES if n.startswith(s.encoder)), None) for n in names}
    if None in found or len(found) > 1:
        raise ValueError(f"no one calibrated scale for the leading metric's encoders "
                         f"{sorted(set(names))}")
    return found.pop()


# Known modes covered below this share of what real held-out images cover is collapse. The
# suite measured real sets at 36 of 38 (2D) and 18 of 18 (3D) or more, the strongest
# duplication at 9 and 5 at most.
COLLAPSE_MODES = 0.5
# Without mode labels: coverage below this share of the real floor is collapse. The suite
# measured real sets at 0.9 of the floor or more, 90%-duplicated sets at 0.49 at most.
COLLAPSE_COVERAGE = 0.7


def position(value: float | None, floor: float | None, ceiling: float | None) -> float | None:
    """0 at the floor, 1 at the ceiling; None when any is missing or the two coincide."""
    if value is None or floor is None or ceiling is None:
        return None
    if not all(math.isfinite(v) for v in (value, floor, ceiling)) or ceiling == floor:
        return None
    return (value - floor) / (ceiling - floor)


def noise(value: float | None, floor: float | None, ceiling: float | None,
          scale: Scale = CURRENT) -> bool | None:
    """The leading metric scores a set as no closer to anatomy than brain-shaped noise."""
    where = position(value, floor, ceiling)
    return None if where is None else where >= scale.noise


def learned(final: float | None, floor: float | None, ceiling: float | None,
            scale: Scale = CURRENT) -> bool | None:
    """A generator learned when its final samples are not noise by the leading metric."""
    is_noise = noise(final, floor, ceiling, scale)
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
              ceiling: float | None, scale: Scale = CURRENT) -> bool | None:
    """The leading metric settled: over the evaluations in the last third of the steps its
    position moved (highest minus lowest) by at most the scale's `converged`. None without at
    least two such evaluations with a position."""
    if not steps:
        return None
    last = max(steps)
    start = last - (last - min(steps)) / 3
    where = [position(v, floor, ceiling) for s, v in zip(steps, values) if s >= start]
    where = [w for w in where if w is not None]
    if len(where) < 2:
        return None
    return max(where) - min(where) <= scale.converged
