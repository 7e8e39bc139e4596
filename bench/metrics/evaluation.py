"""Every metric of a unit, computed the same way for every strategy against held-out real images.

During training (each evaluation): the leading metric (domain FID), the registry's curve metrics
(coverage, MS-SSIM among samples, any registered with `curve=True`) and the discriminator's
accuracy, feeding the curves and the divergence/collapse statistics.
At the end: every metric of the registry (bench.metrics.registry) on the final samples.
Sample counts are fixed per profile and recorded in the reference, with every final metric's
floor (real validation images) and ceiling (the untrained generator).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from bench.device import FEATURE_NUMERICS, autocast, by_voxels, per_chunk
from bench.metrics import scores
from bench.metrics.registry import (LEADING, METRIC_SEED, REGISTRY, Reference, Sample,
                                    encoder_views, inception_features, kid_subset, lead,
                                    list_metrics)
from bench.metrics.domain import get_domain_features, get_encoders
from bench.metrics.modes import (COVERED_SHARE, MIN_EXPECTED, NO_LABELS, ModeReference,
                                 get_mode_classifier)
from bench.metrics.fid import even_subset, fid_infinity
from bench.metrics.inception import PLANES, InceptionFID, load_inception
from bench.profiles import Settings
from bench.records import Evaluation, EvaluatorReference
from datasets.factors import classes, joint

D_ACCURACY_IMAGES = 64


def _attempt(out: dict, missing: dict, metric, compute) -> None:
    """Store the values `compute()` returns ({name: value}), or the reason it failed as missing."""
    try:
        values, reason = compute(), "not computable for these samples (non-finite result)"
    except scores.MetricError as err:
        values, reason = {metric.name: None}, str(err)
    for name, value in values.items():
        value = None if value is None else float(value)
        out[name] = value if value is not None and math.isfinite(value) else None
        if out[name] is None:
            missing[name] = reason


class Evaluator:
    def __init__(self, data, s: Settings, device: torch.device, precision: str, cache_dir: Path,
                 progress: bool = True, against: str = "test", inception: bool = True,
                 train: torch.Tensor | None = None):
        """`against`: the held-out split generated images are compared with; tuning uses "val",
        so the test images never choose hyper-parameters. `train`: the images the GAN trains
        on, where D's accuracy on real images is measured (default: the whole training split;
        fewer subjects: theirs). Everything else comes from `data`, the whole task."""
        self.s, self.device = s, device
        self.n = min(s.fid_samples, len(data.val.t1), len(data.test.t1))
        self.domain = get_domain_features(data, s, cache_dir, device, precision, progress=progress)
        other = "val" if against == "test" else "test"
        # The held-out images samples are measured against, and the other held-out split, whose
        # distance to them is the floor (what a perfect generator would score).
        self.held_out = even_subset(getattr(data, against).t1, self.n)
        self.other = even_subset(getattr(data, other).t1, self.n)
        train = data.train.t1 if train is None else train
        self.train = even_subset(train, min(D_ACCURACY_IMAGES, len(train)))
        self.modes = ModeReference.of(data, get_mode_classifier(data, s, cache_dir, device,
                                                                 progress=progress))
        self.encoders = get_encoders(data, s, cache_dir, device,
                                     encoder_views(list_metrics(dims=s.dims)), progress)
        self.ref = Reference(self.held_out, data.train.t1, self.domain, s, modes=self.modes,
                             encoders=self.encoders)
        self.real = self.ref.features
        self.feature_net = self.domain.name
        # What a checkpointed curve was measured with: the key alone does not pin the weights.
        self.identity = f"{self.domain.name}/{self.domain.info.get('weights_sha256')}"
        extractor, described = (load_inception(cache_dir, device) if inception
                                else (None, "not computed while tuning"))
        self.inception = (InceptionFID(extractor, self.held_out, s.dims, s.inception_images)
                          if extractor is not None else None)
        self.ref.inception = self.inception
        self.inception_net = described if extractor is not None else None
        self.inception_missing = None if extractor is not None else described
        self.msssim_real, self.msssim_real_missing = None, None
        try:
            self.msssim_real = scores.msssim_diversity(self.held_out, s.msssim_pairs, METRIC_SEED)
        except scores.MetricError as err:
            self.msssim_real_missing = f"MS-SSIM among real {against} images: {err}"
        # The last evaluation's samples with their cached features and scores: a unit's final
        # samples are its last evaluation's, so the final metrics need not compute them again.
        self._last: Sample | None = None

    @torch.no_grad()
    def generate(self, G: torch.nn.Module, z: torch.Tensor, precision: str) -> torch.Tensor:
        was_training = G.training
        G.eval()
        with autocast(self.device, precision):
            # Up to 32 at a time, fewer where 32 outputs exceed EVAL_VOXELS (128^3 volumes).
            per_call = min(32, per_chunk(self.s.image_size ** self.s.dims))
            out = torch.cat([G(chunk.to(self.device)).float() for chunk in z.split(per_call)])
        G.train(was_training)
        return out

    def fid(self, images: torch.Tensor | Sample) -> float | None:
        """The leading metric (the curves' LEADING column) of a set of images."""
        sample = images if isinstance(images, Sample) else Sample(images)
        if not torch.isfinite(sample.images).all():
            return None
        return REGISTRY[LEADING].value(self.ref, sample)

    def fid_missing(self, sample: Sample) -> str:
        """Why `fid(sample)` is None, in words a user can act on."""
        if not torch.isfinite(sample.images).all():
            return "the generated images are not finite"
        fake = sample.features(self.ref)
        if not torch.isfinite(fake).all():
            return "the domain encoder gave non-finite features for the generated images"
        unit = "images" if self.s.dims == 2 else "volumes"
        if min(len(self.real), len(fake)) < 2:
            hint = (": use a task with more val and test subjects" if len(self.real) < 2 else "")
            return (f"the domain FID needs at least 2 feature rows a side, got {len(fake)} "
                    f"generated and {len(self.real)} from {len(self.held_out)} held-out "
                    f"{unit}{hint}")
        return (f"the Fréchet distance of {len(fake)} generated and {len(self.real)} held-out "
                "feature rows could not be computed (the square root of their covariance product "
                "failed)")

    def reference(self, untrained: torch.Tensor) -> EvaluatorReference:
        """What a perfect generator (the other held-out split) and an untrained one score: the
        floor and ceiling of the curve metric and of every final metric."""
        s = self.s
        other, blank = Sample(self.other), Sample(untrained)
        floors, ceilings = self._final(other)[0], self._final(blank)[0]
        per_sample = len(self.real) // len(self.held_out)  # 3D: a volume's slices
        unit = "images" if s.dims == 2 else "volumes"
        bias = {"domain": {**fid_infinity(other.features(self.ref), self.real, per_sample),
                           "unit": unit}}
        if self.inception is not None:
            # 2D: one row per image; 3D: planes, each scored apart then averaged.
            fake = inception_features(self.ref, other)
            parts = [fid_infinity(fake[p], self.inception.real[p]) for p in fake]
            bias["inception"] = {k: (None if any(q[k] is None for q in parts)
                                     else float(np.mean([q[k] for q in parts])))
                                 for k in ("n", "fid_inf", "bias")}
            bias["inception"]["unit"] = "images" if s.dims == 2 else "slices per plane"
        # The leading metric's floor and ceiling under its name (the record's field names).
        bounds = {lead("floor"): self.fid(other), lead("ceiling"): self.fid(blank)}
        return EvaluatorReference(
            **bounds, leading=LEADING,
            encoders={v: f"{e.name}/{e.info.get('weights_sha256')}"
                      for v, e in self.encoders.items()},
            floors=floors, ceilings=ceilings, fid_bias=bias, fid_samples=self.n,
            feature_net=self.feature_net, feature_numerics=FEATURE_NUMERICS,
            domain_key=self.domain.key, domain_seconds=self.domain.info.get("seconds"),
            domain_weights=self.domain.info.get("weights_sha256"),
            inception_net=self.inception_net, inception_missing=self.inception_missing,
            inception_images=s.inception_images, inception_floor=floors.get("inception_fid"),
            msssim_real=self.msssim_real, kid_subsets=s.kid_subsets,
            kid_subset_size=kid_subset(s, self.real),  # 3D: slices
            prdc_k=s.prdc_k, ndb_bins=s.ndb_bins, msssim_pairs=s.msssim_pairs,
            modes=self._modes_record())

    def _modes_record(self) -> dict:
        """The mode classifier and how far its labels can be trusted, or why there is none."""
        if self.modes is None:
            return {"missing": NO_LABELS}
        c = self.modes.classifier
        return {"classifier": c.key, "columns": list(c.columns),
                "classes": {col: list(classes(col, self.s.dims)) for col in c.columns},
                # [[label per column], share]: a list, so a results.csv cell holds it whole
                "frequencies": [[list(m), f] for m, f in self.modes.frequencies.items()],
                "test_accuracy": c.info.get("test_accuracy"), "seconds": c.info.get("seconds"),
                "k": len(self.modes.modes(self.n)), "modes_total": len(self.modes.frequencies),
                "min_expected": MIN_EXPECTED, "covered_share": COVERED_SHARE}

    @torch.no_grad()
    def track(self, samples: torch.Tensor, fakes: torch.Tensor, D: torch.nn.Module,
              precision: str) -> Evaluation:
        """Per-evaluation statistics: `samples` from the evaluated G (EMA), `fakes` from the
        trained G, which is what D is trained against."""
        curve = [m for m in list_metrics(inception=False, dims=self.s.dims) if m.curve]
        out = Evaluation(None, metrics={m.name: None for m in curve})
        if torch.isfinite(samples).all():
            sample = self._last = Sample(samples)
            out.value = self.fid(sample)
            if out.value is None:
                out.missing = self.fid_missing(sample)
            for m in curve:
                _attempt(out.metrics, {}, m, lambda: {m.name: m.value(self.ref, sample)})
        else:
            out.missing = "the generated images are not finite"
        # In chunks of EVAL_VOXELS: one chunk for every 2D size up to 256^2 and for 32^3, where
        # D's minibatch standard deviation sees all 64 images as before; 16 volumes at a time at
        # 64^3, and two at 128^3 (the `full` profile's own batch).
        with autocast(self.device, precision):
            real, fake = (torch.cat([D(x.to(self.device)).float().flatten(1).mean(1)
                                     for x in by_voxels(images)])
                          for images in (self.train, fakes))
        out.d_acc_real = float((real > 0).float().mean())
        out.d_acc_fake = float((fake < 0).float().mean())
        return out

    def final(self, samples: torch.Tensor) -> tuple[dict, dict]:
        """(metrics, reasons for the missing ones) of the final samples: every registered metric
        but the curve's leading one (its final value is the curve's last, lead("final"))."""
        if not torch.isfinite(samples).all():
            return {}, {"all": "the final samples are not finite"}
        out, missing = self._final(self._sample(samples))
        out["msssim_real"] = self.msssim_real
        if self.msssim_real is None:
            missing["msssim_real"] = self.msssim_real_missing
        return out, missing

    def mode_counts(self, samples: torch.Tensor | None) -> list | None:
        """[[label per column], count] of the samples' joint modes as the classifier reads them
        (the final samples: their labels are already cached), None without labels."""
        if self.modes is None or samples is None or not torch.isfinite(samples).all():
            return None
        sample = self._sample(samples)
        labels = sample.cached("mode_labels", lambda: self.modes.classifier(sample.images))
        return [[list(m), c] for m, c in sorted(Counter(joint(labels)).items())]

    def _sample(self, samples: torch.Tensor) -> Sample:
        last = self._last
        if (last is not None and last.images.shape == samples.shape
                and torch.equal(last.images, samples.to(last.images.device))):
            return last
        return Sample(samples)

    def _final(self, sample: Sample) -> tuple[dict, dict]:
        out, missing = {}, {}
        if self.inception is None:
            planes = [f"inception_fid_{p}" for p in PLANES] if self.s.dims == 3 else []
            for name in ("inception_fid", *planes, "inception_kid_mean", "inception_kid_std"):
                missing[name] = self.inception_missing
        for m in list_metrics(inception=self.inception is not None, dims=self.s.dims):
            if m.name != LEADING:
                _attempt(out, missing, m, lambda: m.values(self.ref, sample))
        return out, missing
