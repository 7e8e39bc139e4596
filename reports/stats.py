"""Statistics over seeds: bootstrap intervals, the exact paired signed-rank test, Holm's
correction, Fisher's exact test and Wilson rates.

Every interval is a 95% percentile bootstrap with a fixed seed (a new generator per interval, so
one interval never depends on which others were computed), and none is given for fewer than
MIN_SEEDS_FOR_INTERVAL values (or pairs).
"""

from __future__ import annotations

import inspect
from typing import Callable

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
N_RESAMPLES = 9999
MIN_SEEDS_FOR_INTERVAL = 3
BOOTSTRAP_SEED = 0  # fixed, so the same run store always gives the same report


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


def holm(p_values: list[float], family_size: int | None = None) -> list[float]:
    """Holm's step-down adjustment (family-wise error). Written here because SciPy only ships
    Benjamini-Hochberg (`false_discovery_control`), which controls a different error rate.

    `family_size` larger than the p-values given counts tests that belong to the family but were
    not run (a run of fewer strategies than the declared set): the correction a p-value gets
    then does not depend on which strategies someone chose to run."""
    m = max(len(p_values), family_size or 0)
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(sorted(range(len(p_values)), key=lambda j: p_values[j])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))  # keeps the order monotone
        adjusted[i] = running
    return adjusted


def wilson(k: int, n: int) -> tuple[float | None, float | None]:
    """95% Wilson score interval of the proportion k/n; (None, None) when n is 0."""
    if n == 0:
        return None, None
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return float(ci.low), float(ci.high)


def paired_interval(differences) -> tuple[float | None, float | None]:
    """Bootstrap interval of the mean paired difference (the pairs are resampled)."""
    d = _finite(differences)
    if len(d) < MIN_SEEDS_FOR_INTERVAL:
        return None, None
    return _interval((d,), np.mean)


def _signed_ranks(differences: np.ndarray) -> np.ndarray:
    """Wilcoxon's signed ranks: ranks of |d| among the non-zero differences (ties averaged), with
    the sign of d; a zero difference scores 0. An infinite difference takes the largest rank,
    which is how a unit without a value (intention to treat) gets the worst one."""
    out = np.zeros(len(differences))
    nonzero = differences != 0
    out[nonzero] = np.sign(differences[nonzero]) * stats.rankdata(np.abs(differences[nonzero]))
    return out


def signed_rank_p(differences) -> float | None:
    """Two-sided exact Wilcoxon signed-rank p of paired differences, by enumerating every sign
    flip (`scipy.stats.permutation_test`), so ties, zeros and infinite differences are exact too.
    NaN marks a pair without a difference (both sides lost) and counts as a zero. None without
    any pair."""
    d = np.nan_to_num(np.asarray(differences, dtype=float), nan=0.0, posinf=np.inf, neginf=-np.inf)
    if len(d) == 0:
        return None
    if not d.any() or len(d) == 1:  # one pair: both signs are equally extreme
        return 1.0
    exact = len(d) <= 20  # 2^20 sign patterns; beyond that, a seeded Monte Carlo test
    result = stats.permutation_test(
        (_signed_ranks(d),), lambda x, axis: np.sum(x, axis=axis), permutation_type="samples",
        n_resamples=np.inf if exact else N_RESAMPLES, alternative="two-sided", vectorized=True,
        **({} if exact else _permutation_seed()))
    return float(min(1.0, result.pvalue))


def _permutation_seed() -> dict[str, object]:
    name = "rng" if "rng" in inspect.signature(stats.permutation_test).parameters else "random_state"
    return {name: np.random.default_rng(BOOTSTRAP_SEED)}


def smallest_exact_p(n_pairs: int) -> float:
    """The smallest two-sided p the exact signed-rank test can give with n pairs: every pair
    improved (2 of the 2^n sign patterns are as extreme)."""
    return min(1.0, 2.0 / 2 ** n_pairs)


def fisher_p(k1: int, n1: int, k2: int, n2: int) -> float | None:
    """Two-sided Fisher exact p that the rates k1/n1 and k2/n2 differ; None when a side is empty."""
    if n1 == 0 or n2 == 0:
        return None
    return float(stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue)
