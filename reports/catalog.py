"""The metrics the report knows: how to label and format each, which direction is better, and
which Holm family its comparisons against the baseline belong to.

A metric without a family is shown but never compared: a step, a spread, a real-image reference,
or a number with no "better" direction (MS-SSIM among samples should match the real level, not be
as low as possible).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.metrics.registry import DOMAIN, HIGHER, LEADING, LOWER, REGISTRY


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
    registry's curve metric appears through fid_final and friends above)."""
    out = []
    for m in REGISTRY.values():
        if m.name in LEADING.values():  # shown as fid_final, fid_best, ... from the curve
            continue
        out.append(Metric(m.name, m.label, m.better, m.family, m.digits, m.dims))
        # A part exists only where its metric does.
        out += [Metric(p.name, p.label, p.better, None, p.digits,
                       tuple(d for d in p.dims if d in m.dims), missing_with=m.name)
                for p in m.parts]
    return out


METRICS: tuple[Metric, ...] = (
    Metric("fid_final", "final domain FID", LOWER, DOMAIN),
    # Not compared: the best of several evaluations against the same test images is optimistic.
    Metric("fid_best", "best domain FID", LOWER),
    Metric("fid_best_step", "step of best domain FID", digits=0),
    Metric("fid_init", "domain FID at step 0", LOWER),
    Metric("fid_auc", "domain FID averaged over training (AUC)", LOWER, DOMAIN),
    Metric("fid_gap", "final − best domain FID", LOWER),
    *_registered(),
    Metric("msssim_real", "MS-SSIM among real test images", digits=3),
)
BY_NAME = {m.name: m for m in METRICS}
# Set only from the final samples: missing together when those are (metrics_missing.final_samples).
FINAL_SAMPLE_METRICS = frozenset(BY_NAME) - {"fid_final", "fid_best", "fid_best_step", "fid_init",
                                             "fid_auc", "fid_gap"}
KEY_METRICS = ("fid_final", "inception_fid", "kid_mean", "precision", "recall", "coverage",
               "modes_covered")


# On the curve metric's own scale: its floor and ceiling apply.
CURVE_SCALE = frozenset({"fid_final", "fid_best", "fid_init", "fid_auc"})


def bound_columns(name: str) -> tuple[str, str]:
    """The results columns of a metric's floor (real images) and ceiling (untrained G)."""
    if name in CURVE_SCALE:
        return "reference.fid_floor", "reference.fid_ceiling"
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
