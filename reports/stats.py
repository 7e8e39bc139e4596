"""Statistics over seeds: bootstrap intervals, Mann-Whitney U, Holm's correction, Wilson rates.

Every interval is a 95% percentile bootstrap with a fixed seed (a new generator per interval, so
one interval never depends on which others were computed), and none is given for fewer than
MIN_SEEDS_FOR_INTERVAL values a side.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
N_RESAMPLES = 9999
MIN_SEEDS_FOR_INTERVAL = 3
ALPHA = 0.05  # a verdict also needs the Holm-adjusted Mann-Whitney p below this
BOOTSTRAP_SEED = 0  # fixed, so the same run store always gives the same report


@dataclass(frozen=True)
class Comparison:
    """Mean of `strategy` minus mean of `baseline` for one metric; `higher_is_better` says
    which sign of the difference is an improvement."""

    strategy: str
    baseline: str
    n: int
    n_baseline: int
    difference: float | None
    low: float | None = None
    high: float | None = None
    metric: str = "fid_final"
    higher_is_better: bool = False
    p: float | None = None  # Mann-Whitney U, two-sided
    p_holm: float | None = None

    @property
    def verdict(self) -> str:
        if self.difference is None:
            return "no values to compare"
        if self.low is None or self.high is None:
            return f"too few seeds for an interval (needs {MIN_SEEDS_FOR_INTERVAL} a side)"
        if self.low <= 0.0 <= self.high:
            return "no clear difference"
        # With few seeds the percentile interval is too narrow (it resamples the seeds it has),
        # so a verdict also needs the rank test, corrected for the comparisons made.
        if self.p_holm is None or self.p_holm >= ALPHA:
            return f"no clear difference (the interval excludes zero, but Holm p ≥ {ALPHA})"
        improved = self.low > 0.0 if self.higher_is_better else self.high < 0.0
        return f"better than {self.baseline}" if improved else f"worse than {self.baseline}"


def _seed_kwargs() -> dict[str, object]:
    # SciPy >= 1.15 takes `rng`; older releases (allowed by pyproject) only `random_state`.
    name = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"
    return {name: np.random.default_rng(BOOTSTRAP_SEED)}


def _finite(values) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x[np.isfinite(x)]


def _interval(samples: tuple[np.ndarray, ...],
              statistic: Callable[..., np.ndarray]) -> tuple[float | None, float | None]:
    # Percentile rather than BCa: with 2-5 seeds BCa's jackknife is unstable or NaN
    # (e.g. for identical values), and a report must never print a NaN interval.
    with np.errstate(divide="ignore", invalid="ignore"):
        result = stats.bootstrap(samples, statistic, n_resamples=N_RESAMPLES,
                                 confidence_level=CONFIDENCE, method="percentile",
                                 vectorized=True, **_seed_kwargs())
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return (low, high) if np.isfinite(low) and np.isfinite(high) else (None, None)


def mean_interval(values) -> tuple[float | None, float | None]:
    """Bootstrap interval of the mean over seeds; (None, None) below MIN_SEEDS_FOR_INTERVAL."""
    x = _finite(values)
    if len(x) < MIN_SEEDS_FOR_INTERVAL:
        return None, None
    return _interval((x,), np.mean)


def _mean_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def _mean_ratio(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(a, axis=axis) / np.mean(b, axis=axis)


def ratio_interval(numerator, denominator) -> tuple[float | None, float | None]:
    """Bootstrap interval of mean(numerator) / mean(denominator), seeds resampled per side."""
    a, b = _finite(numerator), _finite(denominator)
    if min(len(a), len(b)) < MIN_SEEDS_FOR_INTERVAL:
        return None, None
    return _interval((a, b), _mean_ratio)


def mann_whitney_p(x, y) -> float | None:
    """Two-sided Mann-Whitney U p-value, or None when either side is empty."""
    x, y = _finite(x), _finite(y)
    if len(x) == 0 or len(y) == 0:
        return None
    p = float(stats.mannwhitneyu(x, y, alternative="two-sided").pvalue)
    return p if np.isfinite(p) else None


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment (family-wise error). Written here because SciPy only ships
    Benjamini-Hochberg (`false_discovery_control`), which controls a different error rate."""
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda j: p_values[j])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))  # keeps the order monotone
        adjusted[i] = running
    return adjusted


def wilson(k: int, n: int) -> tuple[float | None, float | None]:
    """95% Wilson score interval of the proportion k/n; (None, None) when n is 0."""
    if n == 0:
        return None, None
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return float(ci.low), float(ci.high)


def compare(values, baseline_values, strategy: str, baseline: str, metric: str = "fid_final",
            higher_is_better: bool = False) -> Comparison:
    """Difference of means with a bootstrap interval (seeds resampled independently on each
    side) and a Mann-Whitney p-value, both only from MIN_SEEDS_FOR_INTERVAL values a side."""
    x, y = _finite(values), _finite(baseline_values)
    base = dict(strategy=strategy, baseline=baseline, n=len(x), n_baseline=len(y), metric=metric,
                higher_is_better=higher_is_better)
    if len(x) == 0 or len(y) == 0:
        return Comparison(difference=None, **base)
    # Means of equal values can differ in the last bit (0.7 * 3 / 3 vs 0.7 * 4 / 4): such noise
    # must not turn identical results into "better" or "worse".
    tolerance = 1e-9 * max(np.abs(x).max(), np.abs(y).max())

    def snap(value: float | None) -> float | None:
        return 0.0 if value is not None and abs(value) <= tolerance else value

    difference = snap(float(x.mean() - y.mean()))
    # Two seeds a side give a percentile interval of a handful of distinct values, which would
    # claim differences it cannot support: no verdict below MIN_SEEDS_FOR_INTERVAL.
    if len(x) < MIN_SEEDS_FOR_INTERVAL or len(y) < MIN_SEEDS_FOR_INTERVAL:
        return Comparison(difference=difference, **base)
    low, high = _interval((x, y), _mean_difference)
    return Comparison(difference=difference, low=snap(low), high=snap(high),
                      p=mann_whitney_p(x, y), **base)
