"""Comparison of one strategy against a baseline over seeds, with a bootstrap interval."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
N_RESAMPLES = 9999
MIN_SEEDS_FOR_INTERVAL = 3
BOOTSTRAP_SEED = 0  # fixed, so the same run store always gives the same report


@dataclass(frozen=True)
class Comparison:
    """Mean of `strategy` minus mean of `baseline` (lower FID is better, so negative = better)."""

    strategy: str
    baseline: str
    n: int
    n_baseline: int
    difference: float | None
    low: float | None = None
    high: float | None = None

    @property
    def verdict(self) -> str:
        if self.difference is None:
            return "no values to compare"
        if self.low is None or self.high is None:
            return f"too few seeds for an interval (needs {MIN_SEEDS_FOR_INTERVAL} a side)"
        if self.low <= 0.0 <= self.high:
            return "no clear difference"
        return f"better than {self.baseline}" if self.high < 0.0 else f"worse than {self.baseline}"


def _mean_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def _seed_kwargs() -> dict[str, object]:
    # SciPy >= 1.15 takes `rng`; older releases (allowed by pyproject) only `random_state`.
    name = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"
    return {name: np.random.default_rng(BOOTSTRAP_SEED)}


def compare(values: np.ndarray, baseline_values: np.ndarray,
            strategy: str, baseline: str) -> Comparison:
    """Bootstrap the difference of means, resampling seeds independently on each side."""
    x = np.asarray(values, dtype=float)
    y = np.asarray(baseline_values, dtype=float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if len(x) == 0 or len(y) == 0:
        return Comparison(strategy, baseline, len(x), len(y), None)
    difference = float(x.mean() - y.mean())
    # Two seeds a side give a percentile interval of a handful of distinct values, which would
    # claim differences it cannot support: no verdict below MIN_SEEDS_FOR_INTERVAL.
    if len(x) < MIN_SEEDS_FOR_INTERVAL or len(y) < MIN_SEEDS_FOR_INTERVAL:
        return Comparison(strategy, baseline, len(x), len(y), difference)
    # Percentile rather than BCa: with 2-5 seeds BCa's jackknife is unstable or NaN
    # (e.g. for identical values), and a report must never print a NaN interval.
    result = stats.bootstrap((x, y), _mean_difference, n_resamples=N_RESAMPLES,
                             confidence_level=CONFIDENCE, method="percentile",
                             vectorized=True, **_seed_kwargs())
    interval = result.confidence_interval
    return Comparison(strategy, baseline, len(x), len(y), difference,
                      float(interval.low), float(interval.high))
