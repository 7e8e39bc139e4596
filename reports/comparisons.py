"""Every strategy against the baseline, paired by seed and counting every unit; comparisons.csv.

Seed k of every strategy shares the noise, the batch order and the fresh layers' initialization
(and, by default, pretext k), so strategy and baseline are compared pair by pair: the per-seed
differences, a bootstrap interval of their mean, and an exact Wilcoxon signed-rank test, with
Holm's correction within the primary, the secondary or the exploratory family (bench.plan).

Intention to treat: a unit that ran and has no value (diverged, its pretext failed, non-finite
final images) stays in its pair. It takes the worst rank in the test, and in the mean the worst
of the metric's ceiling (the untrained generator) and every value observed in the comparison.
No verdict is given while a unit failed for another reason (rerun it: `bench run` retries failed
units), while a seed is missing on one side, or when the baseline did not learn or collapsed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from bench.metrics import states
from bench.metrics.registry import LEADING
from bench.plan import (ALPHA, BASELINE, FAMILIES, MATCHINGS, PLANNED_STRATEGIES, PRIMARY_METRIC,
                        STEP_ONLY, family, family_sizes)
from reports import fmt
from reports.catalog import HIGHER, Metric, bound_columns
from reports.stats import MIN_SEEDS_FOR_INTERVAL, holm, paired_interval, signed_rank_p
from ground.errors import BenchError

CSV_COLUMNS = ("task", "strategy", "baseline", "metric", "family", "matching", "n_pairs",
               "n_diverged", "diff_mean", "ci_low", "ci_high", "p", "p_holm", "verdict", "why",
               "smallest_effect", "beyond_smallest", "differences")
VERDICTS = ("better", "worse", "no clear difference", "no verdict")


@dataclass(frozen=True)
class PairedComparison:
    """`strategy` minus `baseline` on `metric`, seed against seed; `higher_is_better` says which
    sign is an improvement. `withheld` says why no verdict may be given, whatever the numbers."""

    task: str
    strategy: str
    metric: str
    family: str  # primary | secondary | exploratory
    matching: str  # step | compute
    higher_is_better: bool
    baseline: str = BASELINE
    n_pairs: int = 0
    n_diverged: int = 0
    differences: dict[int, float] | None = None  # seed -> difference counted in the mean
    diff_mean: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p: float | None = None
    p_holm: float | None = None
    smallest_effect: float | None = None
    withheld: str | None = None

    @property
    def verdict(self) -> str:
        if self.withheld or self.diff_mean is None or self.ci_low is None:
            return "no verdict"
        if self.ci_low <= 0.0 <= self.ci_high or self.p_holm is None or self.p_holm >= ALPHA:
            return "no clear difference"
        improved = self.ci_low > 0.0 if self.higher_is_better else self.ci_high < 0.0
        return "better" if improved else "worse"

    @property
    def why(self) -> str:
        """The reason behind the verdict, in words."""
        if self.withheld:
            return self.withheld
        if self.diff_mean is None:
            return "no values to compare"
        if self.ci_low is None:
            return (f"{self.n_pairs} seed pair(s): an interval needs {MIN_SEEDS_FOR_INTERVAL}")
        if self.ci_low <= 0.0 <= self.ci_high:
            return "the interval includes zero"
        if self.p_holm is None or self.p_holm >= ALPHA:
            return f"the interval excludes zero, but Holm p ≥ {ALPHA}"
        return f"the interval excludes zero and Holm p < {ALPHA}"

    @property
    def beyond_smallest(self) -> str | None:
        """yes: the whole interval lies beyond the smallest effect of interest; no: within it
        (equivalent for practical purposes); unclear: it straddles it."""
        if self.ci_low is None or self.smallest_effect is None:
            return None
        e = self.smallest_effect
        if self.ci_low > e or self.ci_high < -e:
            return "yes"
        return "no" if -e < self.ci_low and self.ci_high < e else "unclear"

    def as_row(self) -> dict:
        row = {name: getattr(self, name) for name in CSV_COLUMNS}
        row["differences"] = json.dumps(self.differences) if self.differences else None
        return row


@dataclass(frozen=True)
class Health:
    """Whether the baseline learned, did not collapse and had converged on a task
    (bench.metrics.states)."""

    learned: bool | None
    collapsed: bool | None
    text: str
    converged: bool | None = None

    @property
    def fit(self) -> bool:
        return self.learned is True and self.collapsed is not True and self.converged is not False


def _reference(in_task: pd.DataFrame, column: str) -> float | None:
    values = fmt.distinct(in_task, column)
    return float(values[0]) if len(values) == 1 else None


def _bounds(in_task: pd.DataFrame, metric: str) -> tuple[float | None, float | None]:
    floor, ceiling = bound_columns(metric)
    return _reference(in_task, floor), _reference(in_task, ceiling)


def _mean(in_task: pd.DataFrame, strategy: str, column: str) -> float | None:
    if column not in in_task.columns:
        return None
    x = pd.to_numeric(in_task.loc[in_task["strategy"] == strategy, column], errors="coerce")
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else None


def _lost_modes(in_task: pd.DataFrame) -> tuple[bool | None, str]:
    """The baseline's collapse (bench.metrics.states.collapsed) and how it was judged."""
    modes_floor = _reference(in_task, "reference.floors.modes_covered")
    if states.by_modes(modes_floor):
        covered = _mean(in_task, BASELINE, "modes_covered")
        return (states.collapsed(None, None, covered, modes_floor),
                f"mean known modes covered {fmt.num(covered, 1)} against {fmt.num(modes_floor, 1)} "
                f"for real images (collapse below {states.COLLAPSE_MODES} of that)")
    coverage = _mean(in_task, BASELINE, "coverage")
    return (states.collapsed(coverage, _reference(in_task, "reference.floors.coverage")),
            f"mean coverage {fmt.num(coverage, 3)} (collapse below {states.COLLAPSE_COVERAGE} of "
            "the real level; no mode labels, and coverage also falls with low fidelity)")


def _settled(in_task: pd.DataFrame, curves: dict[str, pd.DataFrame] | None,
             floor: float | None, ceiling: float | None, scale: states.Scale) -> bool | None:
    """bench.metrics.states.converged on the baseline's mean curve over its units."""
    units = in_task.loc[in_task["strategy"] == BASELINE, "unit"]
    parts = [curves[u][["step", LEADING]] for u in units
             if curves and u in curves and LEADING in curves[u].columns]
    if not parts:
        return None
    mean = pd.concat(parts).dropna().groupby("step")[LEADING].mean()
    return states.converged(mean.index.tolist(), mean.tolist(), floor, ceiling, scale)


def leading_scale(frame: pd.DataFrame) -> states.Scale:
    """The thresholds calibrated for the encoder that scored these rows' leading metric."""
    nets = frame["reference.feature_net"] if "reference.feature_net" in frame.columns else []
    try:
        return states.scale_of(list(nets))
    except ValueError as err:
        raise BenchError(f"{err}; report these rows with the version of bench that scored them")


def baseline_health(in_task: pd.DataFrame, curves: dict[str, pd.DataFrame] | None = None
                    ) -> Health:
    """Learned: the baseline's mean final leading metric no longer scores like noise;
    collapsed: it lost modes (known modes where the task has them, else coverage); converged:
    its mean curve settled over the last third of training (only with `curves`)."""
    if BASELINE not in set(in_task["strategy"]):
        return Health(None, None, f"no {BASELINE} runs, so it is unknown whether the GAN learned")
    name = PRIMARY_METRIC
    final = _mean(in_task, BASELINE, name)
    floor, ceiling = _bounds(in_task, name)
    scale = leading_scale(in_task)
    learned = states.learned(final, floor, ceiling, scale)
    if learned is None:
        return Health(None, None, f"cannot tell whether {BASELINE} learned: it has no final "
                      "leading metric, or its units disagree on the floor and ceiling")
    where = (f"mean final domain FID {fmt.num(final)}, at "
             f"{fmt.num(states.position(final, floor, ceiling), 3)} of the way from the real "
             f"floor {fmt.num(floor)} to the untrained ceiling {fmt.num(ceiling)}")
    if not learned:
        return Health(False, None, f"{BASELINE} did not learn: its {where}, which scores like "
                      f"brain-shaped noise (from {scale.noise:g} on)")
    collapsed, judged = _lost_modes(in_task)
    if collapsed:
        return Health(True, True, f"{BASELINE} learned ({where}) but collapsed: {judged}")
    converged = _settled(in_task, curves, floor, ceiling, scale)
    if converged is False:
        return Health(True, collapsed, f"{BASELINE} learned ({where}) but had not converged: its "
                      f"mean curve moved more than {scale.converged:g} of the way from floor "
                      "to ceiling over the last third of training", converged=False)
    return Health(True, collapsed, f"{BASELINE} learned: its {where}, below the noise level "
                  f"{scale.noise:g}" + ("" if collapsed is False
                                                else "; whether it collapsed is unknown (no mode "
                                                     "labels or coverage, or no real level of "
                                                     "them)"), converged=converged)


def pretext_failed(unit: pd.Series) -> bool:
    failure = unit.get("failure")
    if not fmt.is_missing(failure):
        return failure == "pretext"
    return str(unit.get("reason") or "").startswith("pretext ")  # rows without `failure`


def lost(unit: pd.Series) -> bool:
    """Ran (or was meant to) and has no value: counted at the worst end, never dropped."""
    if unit["status"] == "diverged":
        return True
    if unit["status"] == "failed":
        return pretext_failed(unit)
    return fmt.is_missing(unit.get(PRIMARY_METRIC))  # non-finite final images


def _infrastructure(units: pd.DataFrame) -> list[str]:
    return [u["unit"] for _, u in units.iterrows()
            if u["status"] == "failed" and not pretext_failed(u)]


@dataclass
class _Side:
    values: dict[int, float | None]  # seed -> value (None where lost or missing)
    lost: set[int]
    absent: set[int] = field(default_factory=set)  # no value to compare, and none to impute


def strategy_side(units: pd.DataFrame, metric: str) -> _Side:
    values, gone = {}, set()
    for _, u in units.iterrows():
        seed = int(u["seed"])
        if lost(u):
            gone.add(seed)
            values[seed] = None
        else:
            v = u.get(metric)
            values[seed] = None if fmt.is_missing(v) else float(v)
    return _Side(values, gone)


def _budget_side(units: pd.DataFrame, strategy: str, metric: str) -> _Side | None:
    """The baseline's values at `strategy`'s own compute budget, None when it has none."""
    prefix = f"budgets.{strategy}"
    if f"{prefix}.status" not in units.columns or units[f"{prefix}.status"].isna().all():
        return None
    side = _Side({}, set())
    for _, u in units.iterrows():
        seed, status = int(u["seed"]), u.get(f"{prefix}.status")
        side.values[seed] = None
        if status == "diverged" or (u["status"] == "failed" and pretext_failed(u)):
            side.lost.add(seed)
        elif status == "ok":
            v = u.get(f"{prefix}.{metric}")
            side.values[seed] = None if fmt.is_missing(v) else float(v)
        else:  # not trained on to this budget (run without the strategy), or not evaluated there
            side.absent.add(seed)
    return side


def _worst(observed: list[float], ceiling: float | None, higher_is_better: bool) -> float | None:
    candidates = [v for v in [*observed, ceiling] if v is not None and math.isfinite(v)]
    if not candidates:
        return None
    return min(candidates) if higher_is_better else max(candidates)


def paired(x: _Side, y: _Side, ceiling: float | None, higher_is_better: bool) -> dict:
    """The paired numbers of strategy side `x` against baseline side `y` over their common seeds."""
    seeds = sorted(set(x.values) & set(y.values))
    observed = [v for side in (x, y) for s in seeds for v in [side.values[s]] if v is not None]
    fill = _worst(observed, ceiling, higher_is_better)
    worst_rank = -math.inf if higher_is_better else math.inf
    mean_diffs, test_diffs, diverged = {}, [], 0
    for s in seeds:
        a_lost, b_lost = s in x.lost, s in y.lost
        diverged += a_lost + b_lost
        a, b = x.values[s], y.values[s]
        a_mean, b_mean = (fill if a_lost else a), (fill if b_lost else b)
        if a_mean is None or b_mean is None:
            continue  # a value missing for another reason: said by the caller
        mean_diffs[s] = a_mean - b_mean
        if a_lost and b_lost:
            test_diffs.append(0.0)
        else:
            test_diffs.append((worst_rank if a_lost else a) - (worst_rank if b_lost else b))
    out = {"n_pairs": len(mean_diffs), "n_diverged": diverged, "differences": mean_diffs}
    if mean_diffs:
        d = np.array(list(mean_diffs.values()))
        # Means of equal values can differ in the last bit: such noise is no difference.
        tolerance = 1e-9 * max(1.0, max(abs(v) for v in observed)) if observed else 0.0
        snap = lambda v: None if v is None else (0.0 if abs(v) <= tolerance else v)  # noqa: E731
        low, high = paired_interval(d)
        out.update(diff_mean=snap(float(d.mean())), ci_low=snap(low), ci_high=snap(high),
                   p=signed_rank_p(np.array(test_diffs)))
    return out


def _planned_seeds(in_task: pd.DataFrame) -> set[int]:
    """Seeds 0..N-1 of the largest --seeds the rows record (none for rows without it)."""
    counts = pd.to_numeric(in_task.get("settings.seeds", pd.Series(dtype=float)), errors="coerce")
    return set(range(int(counts.max()))) if counts.notna().any() else set()


def _withheld(in_task: pd.DataFrame, strategy: str, x: _Side, y: _Side | None, health: Health,
              matching: str) -> str | None:
    if not health.fit:
        return health.text
    if y is None:
        return (f"no {BASELINE} values at {strategy}'s compute budget: this run's {BASELINE} did "
                "not train on past the common step budget")
    planned = _planned_seeds(in_task)
    unseen = sorted(planned - set(x.values) - set(y.values))
    if unseen:
        return (f"seed(s) {', '.join(map(str, unseen))} of the planned {len(planned)} are in "
                "no run directory: merge every shard, or finish the run")
    broken = _infrastructure(in_task[in_task["strategy"].isin([strategy, BASELINE])])
    if broken:
        return (f"{len(broken)} unit(s) failed for reasons other than training "
                f"({', '.join(broken)}): rerun `bench run` with the same arguments")
    for name, side, other in ((strategy, x, y), (BASELINE, y, x)):
        gone = sorted(set(other.values) - set(side.values))
        if gone:
            return f"seed(s) {', '.join(map(str, gone))} of {name} missing: finish the run"
    if y.absent:
        return (f"{BASELINE} seed(s) {', '.join(map(str, sorted(y.absent)))} did not train on to "
                f"{strategy}'s compute budget (run before {strategy} joined the run, or resumed "
                f"from another plan): delete those {BASELINE} rows and rerun")
    empty = sorted(s for s in x.values if s in y.values and s not in x.lost | y.lost
                   and (x.values[s] is None or y.values[s] is None))
    if empty:
        return f"no value for seed(s) {', '.join(map(str, empty))} (see the missing metrics)"
    return None


def is_variant(in_task: pd.DataFrame) -> bool:
    """Rows of a task variant (bench/variants.py) record the task they vary."""
    base = fmt.distinct(in_task, "settings.base_task")
    return bool(base) and base[0] != in_task["task"].iloc[0]


def compare_task(in_task: pd.DataFrame, metrics: list[Metric],
                 curves: dict[str, pd.DataFrame] | None = None) -> list[PairedComparison]:
    """Every other strategy against the baseline on each compared metric of one task, at equal
    steps and at equal compute, with Holm-adjusted p within each family (bench.plan).
    A metric no unit of the task has is left out."""
    if BASELINE not in set(in_task["strategy"]):
        return []
    dims = fmt.dims(in_task)
    variant = is_variant(in_task)
    health = baseline_health(in_task, curves)
    base_units = in_task[in_task["strategy"] == BASELINE]
    others = sorted(set(in_task["strategy"]) - {BASELINE})
    out: list[PairedComparison] = []
    names = []
    for m in metrics:
        column = in_task[m.name] if m.name in in_task.columns else None
        if column is None or pd.to_numeric(column, errors="coerce").isna().all():
            continue  # listed under the task's missing metrics instead
        names.append(m.name)
        floor, ceiling = _bounds(in_task, m.name)
        effect = (None if floor is None or ceiling is None
                  else leading_scale(in_task).smallest_effect * abs(ceiling - floor))
        for strategy in others:
            x = strategy_side(in_task[in_task["strategy"] == strategy], m.name)
            for matching in MATCHINGS:
                if matching == "compute" and m.name in STEP_ONLY:
                    continue
                y = (strategy_side(base_units, m.name) if matching == "step"
                     else _budget_side(base_units, strategy, m.name))
                c = PairedComparison(in_task["task"].iloc[0], strategy, m.name,
                                     family(strategy, m.name, variant), matching,
                                     m.better == HIGHER, smallest_effect=effect,
                                     withheld=_withheld(in_task, strategy, x, y, health, matching))
                if y is not None:
                    c = replace(c, **paired(x, y, ceiling, m.better == HIGHER))
                out.append(c)
    # Tests of strategies outside the plan add to the declared size, never hide inside it.
    sizes = family_sizes(names, dims, variant)
    for c in out:
        sizes[c.family] += c.strategy not in PLANNED_STRATEGIES
    for name in FAMILIES:
        members = [i for i, c in enumerate(out) if c.family == name and c.p is not None]
        for i, adjusted in zip(members, holm([out[i].p for i in members], sizes[name])):
            out[i] = replace(out[i], p_holm=adjusted)
    return out


def comparisons_frame(comparisons: dict[str, list[PairedComparison]]) -> pd.DataFrame:
    """comparisons.csv: one row per (task, strategy, metric, matching)."""
    rows = [c.as_row() for task in sorted(comparisons) for c in comparisons[task]]
    return pd.DataFrame(rows, columns=list(CSV_COLUMNS))
