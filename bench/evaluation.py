"""Every metric of a unit, computed the same way for every strategy against held-out real images.

During training (each evaluation): domain FID, MS-SSIM among samples, coverage, and the
discriminator's accuracy, feeding the curves and the divergence/collapse statistics.
At the end: the standard (Inception) FID, KID, precision/recall/density/coverage, MS-SSIM
diversity and NDB/K. Sample counts are fixed per profile and recorded in the reference.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from bench import metrics
from bench.device import autocast
from bench.domain import get_domain_features
from bench.fid import even_subset, frechet_distance
from bench.inception import PLANES, InceptionFID, load_inception
from bench.profiles import Settings

D_ACCURACY_IMAGES = 64
METRIC_SEED = 0  # subsets, pairs and k-means: the same for every unit of a task


def _kid_subset(s: Settings, n: int) -> int:
    # At most half the samples: subsets of the whole set are all equal and their std says nothing.
    return min(s.kid_subset_size, n // 2)


def _attempt(out: dict, missing: dict, names: tuple[str, ...], compute) -> None:
    """Store `compute()`'s values under `names`, or the reason it failed as missing."""
    try:
        values, reason = list(compute()), "not computable for these samples (non-finite result)"
    except metrics.MetricError as err:
        values, reason = [None] * len(names), str(err)
    for name, value in zip(names, values):
        out[name] = value if value is not None and math.isfinite(value) else None
        if out[name] is None:
            missing[name] = reason


class Evaluator:
    def __init__(self, data, s: Settings, device: torch.device, precision: str, cache_dir: Path,
                 progress: bool = True, against: str = "test", inception: bool = True):
        """`against`: the held-out split generated images are compared with; tuning uses "val",
        so the test images never choose hyper-parameters."""
        self.s, self.device = s, device
        self.n = min(s.fid_samples, len(data.val.t1), len(data.test.t1))
        self.domain = get_domain_features(data, s, cache_dir, device, precision, progress=progress)
        other = "val" if against == "test" else "test"
        # The held-out images samples are measured against, and the other held-out split, whose
        # distance to them is the floor (what a perfect generator would score).
        self.held_out = even_subset(getattr(data, against).t1, self.n)
        self.other = even_subset(getattr(data, other).t1, self.n)
        self.train = even_subset(data.train.t1, min(D_ACCURACY_IMAGES, len(data.train.t1)))
        self.real = self.domain(self.held_out.to(device))
        self.feature_net = self.domain.name
        # What a checkpointed curve was measured with: the key alone does not pin the weights.
        self.identity = f"{self.domain.name}/{self.domain.info.get('weights_sha256')}"
        extractor, described = (load_inception(cache_dir, device) if inception
                                else (None, "not computed while tuning"))
        self.inception = (InceptionFID(extractor, self.held_out, s.dims, s.inception_images)
                          if extractor is not None else None)
        self.inception_net = described if extractor is not None else None
        self.inception_missing = None if extractor is not None else described
        try:
            self.msssim_real = metrics.msssim_diversity(self.held_out, s.msssim_pairs, METRIC_SEED)
        except metrics.MetricError:
            self.msssim_real = None

    @torch.no_grad()
    def generate(self, G: torch.nn.Module, z: torch.Tensor, precision: str) -> torch.Tensor:
        was_training = G.training
        G.eval()
        with autocast(self.device, precision):
            out = torch.cat([G(chunk.to(self.device)).float() for chunk in z.split(32)])
        G.train(was_training)
        return out

    def fid(self, images: torch.Tensor) -> float | None:
        if not torch.isfinite(images).all():
            return None
        return frechet_distance(self.domain(images), self.real)

    def reference(self, untrained: torch.Tensor) -> dict:
        """What a perfect generator (the other held-out split) and an untrained one score."""
        s = self.s
        ref = {"fid_floor": self.fid(self.other), "fid_ceiling": self.fid(untrained),
               "fid_samples": self.n, "feature_net": self.feature_net,
               "domain_key": self.domain.key, "domain_seconds": self.domain.info.get("seconds"),
               "domain_weights": self.domain.info.get("weights_sha256"),
               "inception_net": self.inception_net, "inception_images": s.inception_images,
               "inception_floor": None, "msssim_real": self.msssim_real,
               "kid_subsets": s.kid_subsets, "kid_subset_size": _kid_subset(s, self.n),
               "prdc_k": s.prdc_k, "ndb_bins": s.ndb_bins, "msssim_pairs": s.msssim_pairs}
        if self.inception is not None:
            ref["inception_floor"] = self.inception.score(self.other)["inception_fid"]
        return ref

    @torch.no_grad()
    def track(self, samples: torch.Tensor, fakes: torch.Tensor, D: torch.nn.Module,
              precision: str) -> dict:
        """Per-evaluation statistics: `samples` from the evaluated G (EMA), `fakes` from the
        trained G, which is what D is trained against."""
        row = {"fid": None, "msssim": None, "coverage": None}
        if torch.isfinite(samples).all():
            feats = self.domain(samples)
            row["fid"] = frechet_distance(feats, self.real)
            _attempt(row, {}, ("msssim",),
                     lambda: [metrics.msssim_diversity(samples, self.s.msssim_pairs, METRIC_SEED)])
            _attempt(row, {}, ("coverage",),
                     lambda: [metrics.prdc_scores(self.real, feats, self.s.prdc_k)["coverage"]])
        with autocast(self.device, precision):
            real = D(self.train.to(self.device)).float().flatten(1).mean(1)
            fake = D(fakes.to(self.device)).float().flatten(1).mean(1)
        row["d_acc_real"] = float((real > 0).float().mean())
        row["d_acc_fake"] = float((fake < 0).float().mean())
        return row

    def final(self, samples: torch.Tensor) -> tuple[dict, dict]:
        """(metrics, reasons for the missing ones) of the final samples."""
        s, out, missing = self.s, {}, {}
        if not torch.isfinite(samples).all():
            return out, {"all": "the final samples are not finite"}
        feats = self.domain(samples)
        if self.inception is None:
            planes = [f"inception_fid_{p}" for p in PLANES] if s.dims == 3 else []
            for name in ("inception_fid", *planes, "inception_kid_mean", "inception_kid_std"):
                missing[name] = self.inception_missing
        else:
            fake_in, real_in = self.inception.features(samples), self.inception.real
            out.update(self.inception.score_features(fake_in))
            missing.update({k: "the Fréchet distance failed (non-finite features or sqrtm)"
                            for k, v in out.items() if v is None})
            # KID over all planes' features together (3D): one number, as inception_fid's mean.
            _attempt(out, missing, ("inception_kid_mean", "inception_kid_std"), lambda: metrics.kid(
                torch.cat(list(real_in.values())), torch.cat(list(fake_in.values())),
                s.kid_subsets, _kid_subset(s, sum(map(len, fake_in.values()))), METRIC_SEED))
        _attempt(out, missing, ("kid_mean", "kid_std"), lambda: metrics.kid(
            self.real, feats, s.kid_subsets, _kid_subset(s, self.n), METRIC_SEED))
        names = ("precision", "recall", "density", "coverage")
        _attempt(out, missing, names, lambda: [
            metrics.prdc_scores(self.real, feats, s.prdc_k)[k] for k in names])
        _attempt(out, missing, ("msssim",),
                 lambda: [metrics.msssim_diversity(samples, s.msssim_pairs, METRIC_SEED)])
        out["msssim_real"] = self.msssim_real
        if self.msssim_real is None:
            missing["msssim_real"] = "MS-SSIM among real test images could not be computed"
        _attempt(out, missing, ("ndb", "ndb_k"), lambda: [
            (r := metrics.ndb(self.real, feats, s.ndb_bins, METRIC_SEED))["ndb"], r["ndb_k"]])
        return out, missing
