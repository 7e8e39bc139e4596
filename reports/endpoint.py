"""The primary endpoint and the comparison plan, declared here before any data are seen.

- Primary endpoint: the leading metric's final value (the registry's LEADING curve metric at the
  last step: `fid_final`, the domain FID, in 2D and 3D).
- Primary comparison: `cyclegan-t2t1` against `scratch`, once at equal steps ("a better starting
  point?") and once at equal compute, pretext included ("worth its cost?"), per task: one family
  of two tests, Holm-corrected.
- Smallest effect of interest: SMALLEST_EFFECT of the way between the metric's floor (real images)
  and its ceiling (the untrained generator), the same share at which the leading metric stops
  telling a set from brain-shaped noise (bench.metrics.states.NOISE_POSITION).
- Everything else (every other strategy, every other metric, both matchings) is secondary: one
  Holm family per task, sized for the full built-in plan whether or not a run holds all of it.
"""

from __future__ import annotations

from bench.metrics.registry import LEADING
from bench.metrics.states import NOISE_POSITION
from strategies.registry import BASELINE

PRIMARY_STRATEGY = "cyclegan-t2t1"
MATCHINGS = ("step", "compute")
SMALLEST_EFFECT = NOISE_POSITION
__all__ = ["BASELINE", "PRIMARY_STRATEGY", "MATCHINGS", "SMALLEST_EFFECT", "STEP_ONLY",
           "PLANNED_STRATEGIES", "primary_metric", "is_primary", "secondary_family_size"]
# Compared at equal steps only: an average over the common evaluation schedule has no value at
# another strategy's compute budget.
STEP_ONLY = frozenset({"fid_auc"})
# The built-in strategies compared with the baseline, and the controls the plan adds (autoencoder
# with matched compute, the reverse T1->T2 generator, shuffled CycleGAN weights, a 2D pretext
# inflated to 3D): the secondary family counts all of them.
PLANNED_STRATEGIES = ("cyclegan-t2t1", "cyclegan-partial", "pretrained-encoder",
                      "autoencoder-matched", "cyclegan-t1t2", "cyclegan-shuffled",
                      "cyclegan-inflated")


def primary_metric(dims: int | None) -> str:
    """The final value of the task's leading metric (rows without dims: the 2D one)."""
    return f"{LEADING.get(dims, LEADING[2])}_final"


def is_primary(strategy: str, metric: str, dims: int | None) -> bool:
    return strategy == PRIMARY_STRATEGY and metric == primary_metric(dims)


def secondary_family_size(metrics: list[str]) -> int:
    """Tests in a task's secondary family under the full plan: every planned strategy on every
    compared metric, at equal steps and (where defined) at equal compute, less the primary two."""
    per_strategy = sum(1 + (m not in STEP_ONLY) for m in metrics)
    return len(PLANNED_STRATEGIES) * per_strategy - len(MATCHINGS)
