"""The primary endpoint and the comparison plan, declared here before any data are seen.

- Primary endpoint: the leading metric's final value (the registry's LEADING curve metric at the
  last step: `fid_final`, the domain FID, in 2D and 3D).
- Primary comparison: `cyclegan-t2t1` against `scratch`, once at equal steps ("a better starting
  point?") and once at equal compute, pretext included ("worth its cost?"), per task: one family
  of two tests, Holm-corrected.
- Smallest effect of interest: SMALLEST_EFFECT of the way between the metric's floor (real images)
  and its ceiling (the untrained generator), calibrated with the leading metric's encoder
  (bench.metrics.states.Scale; rows scored by an older encoder keep theirs).
- Secondary: every other planned strategy against the baseline on the same leading metric, at
  equal steps and at equal compute: the controls' lines of the answer. One Holm family per task,
  sized for the full built-in plan of the task's dimensionality whether or not a run holds all of
  it.
- Exploratory: every other metric, for every strategy (the primary one included): one Holm
  family per task, so large that only very many seeds give it a verdict; read it as a
  description.
- Seeds: the fewest with which a strategy better on every seed passes its family's Holm
  correction (exact signed-rank tests: no p below 2 / 2^n with n seed pairs): `seeds_for`.
"""

from __future__ import annotations

from bench.metrics.registry import lead
from bench.metrics.states import CURRENT
from strategies import BASELINE, applies, list_strategies, strategy_origin

ALPHA = 0.05  # a verdict also needs the Holm-adjusted paired p below this
PRIMARY_STRATEGY = "cyclegan-t2t1"
MATCHINGS = ("step", "compute")
SMALLEST_EFFECT = CURRENT.smallest_effect
FAMILIES = ("primary", "secondary", "exploratory")
__all__ = ["ALPHA", "BASELINE", "PRIMARY_STRATEGY", "MATCHINGS", "SMALLEST_EFFECT", "STEP_ONLY",
           "FAMILIES", "PLANNED_STRATEGIES", "PRIMARY_METRIC", "family", "family_sizes", "seeds_for",
           "plan_seeds"]
# Compared at equal steps only: an average over the common evaluation schedule has no value at
# another strategy's compute budget.
STEP_ONLY = frozenset({lead("auc")})
# The built-in strategies compared with the baseline (every registered built-in but the baseline:
# the primary one, the variants, and the controls that say why a transfer helps). A new built-in
# strategy joins the plan, and the families grow, by its file alone.
PLANNED_STRATEGIES = tuple(s for s in list_strategies()
                           if strategy_origin(s) == "built-in" and s != BASELINE)


# The primary endpoint's column: the leading metric's final value, in 2D and 3D.
PRIMARY_METRIC = lead("final")


def family(strategy: str, metric: str, variant: bool = False) -> str:
    """A task variant (fewer training subjects, another pretext budget) answers secondary
    questions only: even its primary pair's test is secondary there."""
    if metric != PRIMARY_METRIC:
        return "exploratory"
    return "primary" if strategy == PRIMARY_STRATEGY and not variant else "secondary"


def _planned(dims: int | None) -> list[str]:
    return [s for s in PLANNED_STRATEGIES if applies(s, dims or 2)]


def family_sizes(metrics: list[str], dims: int | None, variant: bool = False) -> dict[str, int]:
    """Tests per family under the full plan for a task of `dims` (or a variant of one): every
    planned strategy that applies to it, on every compared metric, at equal steps and (where
    defined) equal compute."""
    others = [m for m in metrics if m != PRIMARY_METRIC]
    per_strategy = sum(1 + (m not in STEP_ONLY) for m in others)
    planned = _planned(dims)
    primary = 0 if variant else len(MATCHINGS)
    return {"primary": primary, "secondary": len(MATCHINGS) * len(planned) - primary,
            "exploratory": len(planned) * per_strategy}


def seeds_for(family_size: int) -> int:
    """The fewest seed pairs with which a strategy better on every one passes Holm in a family
    of `family_size`: the exact signed-rank test's smallest p, 2 / 2^n, times the size."""
    n = 1
    while 2.0 / 2 ** n * family_size >= ALPHA:
        n += 1
    return n


def plan_seeds(strategies: list[str], dims: set[int], variants: bool = False) -> int:
    """`--seeds` by default: enough for a verdict in every family the plan's comparisons fall
    in (the primary pair alone: the primary family; any other strategy, or any task variant:
    the secondary too)."""
    sizes = [len(MATCHINGS)]
    if variants or set(strategies) - {BASELINE, PRIMARY_STRATEGY}:
        sizes += [family_sizes([], d, variants)["secondary"] for d in dims]
    return seeds_for(max(sizes))
