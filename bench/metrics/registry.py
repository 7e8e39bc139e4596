"""The metrics of a set of generated images, one registry entry each: how it is computed against
a reference, which direction is better, and its label. The validation suite (validate.py) reads
every entry from here; `register` adds one, also from a plugin.

A metric computes from a `Sample` (the generated images, with their features computed once and
shared by every metric) against a `Reference` (held-out real images and the training images).
It returns its value, or a dict holding its value under its own name plus companion values
without a direction of their own (a spread, a count, per-plane parts), recorded beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from bench.metrics import modes, scores
from bench.metrics.domain import Views
from bench.metrics.defects import checkerboard_energy, dark_boxes
from bench.metrics.fid import frechet_distance
from bench.metrics.memorization import copies, memorization, nearest_distances
from ground.errors import BenchError

LOWER, HIGHER = "lower", "higher"
METRIC_SEED = 0  # subsets, pairs and k-means: the same for every set of a task
# Holm families: the report corrects a task's comparisons against the baseline within each.
DOMAIN, INCEPTION, PRDC, MODES_FAMILY, MEMORIZATION = (
    "domain features", "Inception features", "precision / recall", "mode coverage",
    "memorization")


class _Cached:
    """Values computed once per object and shared by every metric that needs them."""

    def cached(self, key: str, compute: Callable[[], object]):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]


def _features_key(views: Views | None) -> str:
    return "features" if views is None else f"features:{views.name}"


@dataclass
class Reference(_Cached):
    """What samples are measured against: held-out real `images` and the `train` images, the
    feature networks (`domain`, and `inception` when its weights are present) and the settings."""

    images: torch.Tensor
    train: torch.Tensor
    domain: Callable[[torch.Tensor], torch.Tensor]  # the leading metric's encoder
    s: object  # bench.profiles.Settings
    inception: object | None = None  # bench.metrics.inception.InceptionFID
    modes: modes.ModeReference | None = None  # None: the task's images carry no mode labels
    # Further domain encoders by their views' name, for metrics with an encoder of their own.
    encoders: dict[str, Callable[[torch.Tensor], torch.Tensor]] = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def features(self) -> torch.Tensor:
        return self.features_of(None)

    def encoder(self, views: Views | None) -> Callable[[torch.Tensor], torch.Tensor]:
        if views is None:
            return self.domain
        if views.name not in self.encoders:
            raise scores.MetricError(f"no domain encoder trained on {views.name} views was loaded")
        return self.encoders[views.name]

    def features_of(self, views: Views | None) -> torch.Tensor:
        """The held-out images' features in the leading encoder (None) or in `views`' encoder."""
        return self.cached(_features_key(views), lambda: self.encoder(views)(self.images))

    @property
    def train_features(self) -> torch.Tensor:
        return self.cached("train_features", lambda: self.domain(self.train))

    @property
    def rows_per_image(self) -> int:
        """Feature rows per image: 1 in 2D, a volume's slices in 3D."""
        return len(self.features) // len(self.images)


@dataclass
class Sample(_Cached):
    """Generated (or degraded real) images, measured against one Reference only: its cached
    features and scores are that Reference's."""

    images: torch.Tensor
    _cache: dict = field(default_factory=dict, repr=False)
    _ref: Reference | None = field(default=None, repr=False)

    def features(self, ref: Reference, views: Views | None = None) -> torch.Tensor:
        """Its features in the leading encoder, or in the encoder trained on `views`."""
        if self._ref is None:
            self._ref = ref
        elif self._ref is not ref:
            raise ValueError("a Sample is measured against one Reference; make a new Sample")
        return self.cached(_features_key(views), lambda: ref.encoder(views)(self.images))


@dataclass(frozen=True)
class Part:
    """A companion value a metric records beside its own (a spread, a count, a per-plane part):
    shown in the report, never compared."""

    name: str
    label: str
    digits: int = 3
    dims: tuple[int, ...] = (2, 3)
    better: str | None = None


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    compute: Callable[[Reference, Sample], float | dict | None]
    better: str | None = None  # None: no better direction (compared with the real level)
    family: str | None = None  # None: shown in the report, never compared
    digits: int = 3
    parts: tuple[Part, ...] = ()
    # The direction in which it moves as images get worse, for the validation suite; defaults
    # to the opposite of `better`.
    worse: str | None = None
    needs_inception: bool = False
    # What the validation suite requires of it (the rest it may ignore): the degradations it must
    # order (names in bench.metrics.degrade) and whether it must tell the fake cases (voxel
    # shuffle, checkerboard, untrained generator) from real anatomy.
    must_order: tuple[str, ...] = ()
    must_tell_fakes: bool = False
    curve: bool = False  # also computed at every evaluation during training (a curve column)
    # Whether the suite requires it to rank every set without anatomy behind every mild
    # degradation that keeps it, on every draw (bench.metrics.validate.anatomy_order).
    must_rank_anatomy: bool = False
    # A domain encoder of its own, trained on these views; None: the leading metric's encoder.
    views: Views | None = None
    # The dims (2, 3) in which `bench validate-metrics` at the quick profile passed everything
    # this entry requires (docs/evaluation.md): where the report may trust it against the
    # leading metric (the answer flags a comparison where a validated metric disagrees).
    validated: tuple[int, ...] = ()
    dims: tuple[int, ...] = (2, 3)  # the dimensionalities whose images it can measure

    @property
    def worsens(self) -> str:
        if self.worse is not None:
            return self.worse
        return {LOWER: HIGHER, HIGHER: LOWER}[self.better]

    def values(self, ref: Reference, x: Sample) -> dict[str, float | None]:
        """{name: value} and any companions."""
        out = self.compute(ref, x)
        return dict(out) if isinstance(out, dict) else {self.name: out}

    def value(self, ref: Reference, x: Sample) -> float | None:
        return self.values(ref, x).get(self.name)


REGISTRY: dict[str, Metric] = {}
# The metric of the training curves, tuning, the events, the primary endpoint and the report's
# "learned" check: the cheapest that passes the validation suite (see docs/evaluation.md); the
# domain FID passes every check it is required to pass in both tasks. One for 2D and 3D, so a
# report's tasks share their endpoint's column. Rows store it under its name: the curve's column
# LEADING, its summaries `lead(...)` (fid_final, fid_best, ...), its missing reason in the curve
# `lead("missing")`. Lower is better: a curve's best is its minimum, a blow-up rises above it.
LEADING = "fid"


def lead(summary: str) -> str:
    """The stored name of a summary of the leading metric: final, best, best_step, init, auc,
    gap (rows), missing (curves), floor, ceiling (the evaluator's reference)."""
    return f"{LEADING}_{summary}"


def register(metric: Metric) -> Metric:
    if metric.better is None and metric.worse is None:
        raise BenchError(f"metric {metric.name} needs `better` or `worse` (the direction in which "
                         "it gets worse, for the validation suite)")
    if metric.name in REGISTRY:
        raise BenchError(f"metric name {metric.name} is already registered; choose another name")
    REGISTRY[metric.name] = metric
    return metric


def list_metrics(inception: bool = True, dims: int | None = None) -> list[Metric]:
    """The registered metrics (those for `dims` only, when given)."""
    return [m for m in REGISTRY.values() if (inception or not m.needs_inception)
            and (dims is None or dims in m.dims)]


def encoder_views(metrics: list[Metric]) -> list[Views]:
    """The views of every domain encoder `metrics` need besides the leading one, each once."""
    return list({m.views.name: m.views for m in metrics if m.views is not None}.values())


def domain_fid(views: Views | None = None) -> Callable[[Reference, Sample], float]:
    """The Frechet distance in the leading encoder's features (None) or in `views`' encoder."""
    return lambda ref, x: frechet_distance(x.features(ref, views), ref.features_of(views))



def _prdc(name: str) -> Callable[[Reference, Sample], float]:
    return lambda ref, x: x.cached("prdc", lambda: scores.prdc_scores(
        ref.features, x.features(ref), ref.s.prdc_k))[name]


def kid_subset(s, *sets: torch.Tensor) -> int:
    """At most half of each feature set: subsets of a whole set are all equal and their std
    says nothing."""
    return min(s.kid_subset_size, *(len(f) // 2 for f in sets))


def _kid(ref: Reference, x: Sample) -> dict:
    fake = x.features(ref)
    mean, std = scores.kid(ref.features, fake, ref.s.kid_subsets,
                           kid_subset(ref.s, fake, ref.features), METRIC_SEED)
    return {"kid_mean": mean, "kid_std": std}


def _ndb(ref: Reference, x: Sample) -> dict:
    return scores.ndb(ref.features, x.features(ref), ref.s.ndb_bins, METRIC_SEED)


def nearest(ref: Reference, x: Sample, space: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest-training distances of the samples and of the held-out images, one per image (a
    volume's slices reduced to their median), in "features" (the domain features) or "pixels"."""
    if space == "features":
        train, held, fake = ref.train_features, ref.features, lambda: x.features(ref)
        rows = ref.rows_per_image
    else:
        train, held, fake = ref.train, ref.images, lambda: x.images
        rows = 1
    held_nn = ref.cached(f"held_nn_{space}", lambda: nearest_distances(held, train, rows))
    return x.cached(f"nn_{space}", lambda: nearest_distances(fake(), train, rows)), held_nn


def _memorization(space: str, key: str) -> Callable[[Reference, Sample], float]:
    return lambda ref, x: memorization(*nearest(ref, x, space))[key]


def _copying(space: str, name: str) -> Callable[[Reference, Sample], dict]:
    """The share below the held-out level, and `NAME_flag`: 1 when flagged as copying."""
    def compute(ref: Reference, x: Sample) -> dict:
        fake, held = nearest(ref, x, space)
        return {name: memorization(fake, held)["share"], f"{name}_flag": float(copies(fake, held))}
    return compute


def _labels(ref: Reference, x: Sample) -> torch.Tensor:
    """The sample's known modes as the classifier reads them, classified once per sample."""
    if ref.modes is None:
        raise scores.MetricError(modes.NO_LABELS)
    return x.cached("mode_labels", lambda: ref.modes.classifier(x.images))


def _modes(name: str) -> Callable[[Reference, Sample], dict]:
    """The ground-truth mode scores (bench.metrics.modes)."""
    def compute(ref: Reference, x: Sample) -> dict:
        labels = _labels(ref, x)
        out = x.cached("mode_scores", lambda: modes.scores(ref.modes, labels))
        if name == "mode_tv":
            return {name: out[name]}
        if not out["modes_k"]:
            raise scores.MetricError(
                f"no known joint mode is expected {modes.MIN_EXPECTED:g} times among "
                f"{len(labels)} samples; a profile with more samples (fid_samples) judges modes")
        return {name: out[name], "modes_k": out["modes_k"]}
    return compute


def _levels(ref: Reference, x: Sample) -> dict:
    return modes.level_scores(ref.modes, _labels(ref, x))


def _checkerboard(ref: Reference, x: Sample) -> dict:
    """The samples' mean period-2 share, beside the held-out real images' (its only yardstick)."""
    real = ref.cached("checkerboard", lambda: float(checkerboard_energy(ref.images).mean()))
    return {"checkerboard": float(checkerboard_energy(x.images).mean()), "checkerboard_real": real}


def inception_features(ref: Reference, x: Sample) -> dict[str, torch.Tensor]:
    """The sample's Inception features (per plane in 3D), computed once."""
    return x.cached("inception", lambda: ref.inception.features(x.images))


def _inception_fid(ref: Reference, x: Sample) -> dict:
    return ref.inception.score_features(inception_features(ref, x))  # 3D: with the per-plane parts


def _inception_kid(ref: Reference, x: Sample) -> dict:
    # Over all planes' features together (3D): one number, as inception_fid's mean.
    real, fake = (torch.cat(list(f.values()))
                  for f in (ref.inception.real, inception_features(ref, x)))
    mean, std = scores.kid(real, fake, ref.s.kid_subsets, kid_subset(ref.s, fake, real),
                           METRIC_SEED)
    return {"inception_kid_mean": mean, "inception_kid_std": std}


# The suite's requirements, fixed before any measurement. A distance between distributions must
# see everything but copying; fidelity (precision, density) must see image quality and the fakes;
# coverage-type scores must see lost modes (coverage, a distance to real neighbourhoods, also the
# fakes); a diversity score must see duplication; memorization scores must see copying only.
QUALITY = ("blur", "noise", "contrast")
MODES = ("dropped_modes", "duplicated")
DISTANCE = {"must_order": QUALITY + ("shift",) + MODES, "must_tell_fakes": True}

PLANE_PARTS = tuple(Part(f"inception_fid_{p}", f"{p} Inception FID", 2, (3,), LOWER)
                    for p in ("axial", "coronal", "sagittal"))


def _flag(name: str, space: str) -> Part:
    return Part(f"{name}_flag", f"flagged as copying training images ({space}; 1 = yes)", 0)


for _metric in (
    # Passes every graded check and fake, but not the anatomy ordering (docs/evaluation.md):
    # validated nowhere until a leading metric that passes it replaces this encoder.
    Metric("fid", "domain FID", domain_fid(), LOWER, DOMAIN, 2, **DISTANCE,
           must_rank_anatomy=True),
    Metric("kid_mean", "domain KID", _kid, LOWER, DOMAIN, 4,
           (Part("kid_std", "domain KID std over subsets", 4),), **DISTANCE),
    Metric("inception_fid", "Inception FID", _inception_fid, LOWER, INCEPTION, 2, PLANE_PARTS,
           needs_inception=True, **DISTANCE),
    Metric("inception_kid_mean", "Inception KID", _inception_kid, LOWER, INCEPTION, 4,
           (Part("inception_kid_std", "Inception KID std over subsets", 4),),
           needs_inception=True, **DISTANCE),
    Metric("precision", "precision", _prdc("precision"), HIGHER, PRDC, must_order=QUALITY,
           must_tell_fakes=True),
    Metric("recall", "recall", _prdc("recall"), HIGHER, PRDC, must_order=MODES),
    Metric("density", "density", _prdc("density"), HIGHER, PRDC, must_order=QUALITY,
           must_tell_fakes=True),
    Metric("coverage", "coverage", _prdc("coverage"), HIGHER, PRDC, must_order=MODES,
           must_tell_fakes=True, curve=True, validated=(2, 3)),
    Metric("msssim", "MS-SSIM among samples (lower = more diverse)", lambda ref, x:
           scores.msssim_diversity(x.images, ref.s.msssim_pairs, METRIC_SEED), worse=HIGHER,
           must_order=("duplicated",), curve=True),
    # Ground truth: the modes a classifier reads in each sample (bench.metrics.modes).
    Metric("modes_covered", "modes covered (of K known joint modes)", _modes("modes_covered"),
           HIGHER, MODES_FAMILY, 1, (Part("modes_k", "K: known joint modes judged", 0),),
           must_order=MODES, curve=True, validated=(2, 3)),
    Metric("mode_tv", "mode histogram distance (total variation)", _modes("mode_tv"), LOWER,
           MODES_FAMILY, must_order=MODES, must_tell_fakes=True, validated=(2, 3)),
    Metric("levels_covered", "2D slice levels covered (of the levels judged)", _levels, HIGHER,
           None, 1, (Part("levels_k", "slice levels judged", 0),), dims=(2,)),
    # The published samples' visible faults (bench.metrics.defects): descriptive, for the
    # generator's design record; real held-out images hold no dark box.
    Metric("dark_boxes", "share of samples with a dark box inside the brain", lambda ref, x:
           float(dark_boxes(x.images).float().mean()), LOWER, must_order=("dark_box",)),
    Metric("checkerboard", "period-2 share of the brain's power (checkerboard)", _checkerboard,
           worse=HIGHER, digits=4,
           parts=(Part("checkerboard_real", "held-out real images' period-2 share", 4),)),
    Metric("ndb_k", "NDB/K", _ndb, LOWER, MODES_FAMILY,
           parts=(Part("ndb", "NDB (bins differing)", 1, better=LOWER),), must_order=MODES),
    Metric("memorized", "share nearer a training image than held-out images (features)",
           _copying("features", "memorized"), LOWER, MEMORIZATION,
           parts=(_flag("memorized", "features"),), must_order=("memorized",),
           validated=(2, 3)),
    Metric("memorized_pixels", "share nearer a training image than held-out images (pixels)",
           _copying("pixels", "memorized_pixels"), LOWER, MEMORIZATION,
           parts=(_flag("memorized_pixels", "pixels"),), must_order=("memorized",),
           validated=(2, 3)),
    # Descriptive: a median sits at 0 once half the samples are copies, so it cannot order the
    # stronger levels; the shares above carry the memorization verdict.
    Metric("nn_ratio", "median nearest-training distance / held-out's (features)",
           _memorization("features", "ratio"), worse=LOWER),
    Metric("nn_ratio_pixels", "median nearest-training distance / held-out's (pixels)",
           _memorization("pixels", "ratio"), worse=LOWER),
):
    register(_metric)
