"""The metrics the report knows: how to label and format each, which direction is better, and
which Holm family its comparisons against the baseline belong to.

A metric without a family is shown but never compared: a step, a spread, a real-image reference,
or a number with no "better" direction (MS-SSIM among samples should match the real level, not be
as low as possible).
"""

from __future__ import annotations

from dataclasses import dataclass

LOWER, HIGHER = "lower", "higher"
# Holm families: the comparisons of one task within one family share one correction.
DOMAIN, INCEPTION, PRDC, MODES = ("domain features", "Inception features",
                                  "precision / recall", "mode coverage")


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


METRICS: tuple[Metric, ...] = (
    Metric("fid_final", "final domain FID", LOWER, DOMAIN),
    # Not compared: the best of several evaluations against the same test images is optimistic.
    Metric("fid_best", "best domain FID", LOWER),
    Metric("fid_best_step", "step of best domain FID", digits=0),
    Metric("fid_init", "domain FID at step 0", LOWER),
    Metric("fid_auc", "domain FID averaged over training (AUC)", LOWER, DOMAIN),
    Metric("fid_gap", "final − best domain FID", LOWER),
    Metric("kid_mean", "domain KID", LOWER, DOMAIN, digits=4),
    Metric("kid_std", "domain KID std over subsets", digits=4),
    Metric("inception_fid", "Inception FID", LOWER, INCEPTION),
    *(Metric(f"inception_fid_{plane}", f"{plane} Inception FID", LOWER, dims=(3,),
             missing_with="inception_fid") for plane in ("axial", "coronal", "sagittal")),
    Metric("inception_kid_mean", "Inception KID", LOWER, INCEPTION, digits=4),
    Metric("inception_kid_std", "Inception KID std over subsets", digits=4),
    Metric("precision", "precision", HIGHER, PRDC, digits=3),
    Metric("recall", "recall", HIGHER, PRDC, digits=3),
    Metric("density", "density", HIGHER, PRDC, digits=3),
    Metric("coverage", "coverage", HIGHER, PRDC, digits=3),
    Metric("msssim", "MS-SSIM among samples (lower = more diverse)", digits=3),
    Metric("msssim_real", "MS-SSIM among real test images", digits=3),
    Metric("ndb", "NDB (bins differing)", LOWER, digits=1),
    Metric("ndb_k", "NDB/K", LOWER, MODES, digits=3),
)
BY_NAME = {m.name: m for m in METRICS}
# Set only from the final samples: missing together when those are (metrics_missing.final_samples).
FINAL_SAMPLE_METRICS = frozenset(BY_NAME) - {"fid_final", "fid_best", "fid_best_step", "fid_init",
                                             "fid_auc", "fid_gap"}
KEY_METRICS = ("fid_final", "inception_fid", "kid_mean", "precision", "recall", "coverage")


def metric(name: str) -> Metric:
    """The catalogue entry, or a plain one for a metric a newer harness added."""
    return BY_NAME.get(name, Metric(name, name, digits=3))


def metrics_for(dims: list[int], extra: list[str] = ()) -> list[Metric]:
    """The catalogue's metrics that apply to a task of these dims, then any unknown ones."""
    known = [m for m in METRICS if not dims or any(d in m.dims for d in dims)]
    return known + [metric(name) for name in extra if name not in BY_NAME]


def compared(metrics: list[Metric]) -> list[Metric]:
    return [m for m in metrics if m.family is not None]
