"""The metrics the report knows: how to label and format each, which direction is better, and
which Holm family its comparisons against the baseline belong to.

A metric without a family is shown but never compared: a step, a spread, a real-image reference,
or a number with no "better" direction (MS-SSIM among samples should match the real level, not be
as low as possible).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.metrics.registry import HIGHER, LEADING, LOWER, REGISTRY, lead


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    better: str | None = None
    family: str | None = None
    digits: int = 2
    dims: tuple[int, ...] = (2, 3)
    # Missing for the same reason as this metric when no reason of its own is recorded (the
    # per-plane Inception FIDs are parts of inception_fid).
    missing_with: str | None = None

    @property
    def arrow(self) -> str:
        return {LOWER: " ↓", HIGHER: " ↑"}.get(self.better or "", "")


def _registered() -> list[Metric]:
    """Every final-sample metric of the registry and its parts, as the report shows them (the
    registry's leading metric appears through its summaries, _leading())."""
    out = []
    for m in REGISTRY.values():
        if m.name == LEADING:  # shown as its summaries (fid_final, fid_best, ...) from the curve
            continue
        out.append(Metric(m.name, m.label, m.better, m.family, m.digits, m.dims))
        # A part exists only where its metric does.
        out += [Metric(p.name, p.label, p.better, None, p.digits,
                       tuple(d for d in p.dims if d in m.dims), missing_with=m.name)
                for p in m.parts]
    return out


def _leading() -> list[Metric]:
    """The leading metric's summaries over its curve, each stored under `lead(summary)`."""
    m = REGISTRY[LEADING]
    return [Metric(lead("final"), f"final {m.label}", m.better, m.family),
            # Not compared: the best of several evaluations against the same test images is
            # optimistic.
            Metric(lead("best"), f"best {m.label}", m.better),
            Metric(lead("best_step"), f"step of best {m.label}", digits=0),
            Metric(lead("init"), f"{m.label} at step 0", m.better),
            Metric(lead("auc"), f"{m.label} averaged over training (AUC)", m.better, m.family),
            Metric(lead("gap"), f"final − best {m.label}", LOWER)]


METRICS: tuple[Metric, ...] = (
    *_leading(),
    *_registered(),
    Metric("msssim_real", "MS-SSIM among real test images", digits=3),
)
BY_NAME = {m.name: m for m in METRICS}
# Set only from the final samples: missing together when those are (metrics_missing.final_samples).
FINAL_SAMPLE_METRICS = frozenset(BY_NAME) - {m.name for m in _leading()}
KEY_METRICS = (lead("final"), "inception_fid", "kid_mean", "precision", "recall", "coverage",
               "modes_covered")


# On the leading metric's own scale: its floor and ceiling apply.
CURVE_SCALE = frozenset({lead("final"), lead("best"), lead("init"), lead("auc")})


def bound_columns(name: str) -> tuple[str, str]:
    """The results columns of a metric's floor (real images) and ceiling (untrained G)."""
    if name in CURVE_SCALE:
        return f"reference.{lead('floor')}", f"reference.{lead('ceiling')}"
    return f"reference.floors.{name}", f"reference.ceilings.{name}"


def metric(name: str) -> Metric:
    """The catalogue entry; for a metric registered after import (a plugin's), its registry
    entry; otherwise a plain one, for a metric a newer harness added."""
    if name in BY_NAME:
        return BY_NAME[name]
    return {m.name: m for m in _registered()}.get(name, Metric(name, name, digits=3))


def metrics_for(dims: list[int], extra: list[str] = ()) -> list[Metric]:
    """The catalogue's metrics that apply to a task of these dims, then any unknown ones."""
    known = [m for m in METRICS if not dims or any(d in m.dims for d in dims)]
    return known + [metric(name) for name in extra if name not in BY_NAME]


def compared(metrics: list[Metric]) -> list[Metric]:
    return [m for m in metrics if m.family is not None]
