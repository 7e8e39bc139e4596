"""A missing metric says its real cause, and the metric libraries stay quiet."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import torch

from bench.metrics import scores
from bench.metrics.evaluation import Evaluator
from bench.metrics.registry import Sample
from bench.records import CurvePoint, Evaluation
from bench.unit import unit_metrics


def test_prdc_does_not_warn_about_scikit_learns_delayed_when_the_filters_are_empty():
    # Worker threads of an 8-thread pairwise_distances reset the process's warning filters; an
    # empty filter list is what makes scikit-learn warn.
    real, fake = torch.randn(200, 16), torch.randn(200, 16) + 0.5
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()
        out = scores.prdc_scores(real, fake, 5)
    assert 0 <= out["coverage"] <= 1
    assert not [w for w in caught if "delayed" in str(w.message)], [str(w.message) for w in caught]


def test_the_evaluator_says_why_a_domain_fid_is_missing(smoke_2d, cache_dir):
    _, s, data = smoke_2d
    ev = Evaluator(data, s, torch.device("cpu"), "fp32", cache_dir, progress=False,
                   inception=False)
    one = Sample(data.test.t1[:1])  # one generated image: no covariance on its side
    assert ev.fid(one) is None
    assert "at least 2 feature rows a side" in ev.fid_missing(one)
    assert "1 generated" in ev.fid_missing(one)
    bad = data.test.t1[:4].clone()
    bad[0, 0, 0, 0] = float("nan")
    assert ev.fid_missing(Sample(bad)) == "the generated images are not finite"
    evaluation = ev.track(bad, data.test.t1[:4], torch.nn.Conv2d(1, 1, 3), "fp32")
    assert evaluation.value is None and evaluation.missing == "the generated images are not finite"
    row = CurvePoint(0, 0.0, evaluation=evaluation).row()
    assert row["fid"] is None and row["fid_missing"] == "the generated images are not finite"


def _result(curve, status="ok", reason=None):
    return SimpleNamespace(curve=curve, steps=curve[-1].step, status=status, reason=reason,
                           samples=None, fids=lambda: [(p.step, p.get("fid")) for p in curve
                                                       if p.get("fid") is not None])


def _evaluated(step: int, fid: float | None, why: str | None = None) -> CurvePoint:
    return CurvePoint(step, 0.0, evaluation=Evaluation(fid, why))


def test_unit_metrics_carry_the_evaluations_reason_not_a_guess():
    why = "the domain FID needs at least 2 feature rows a side, got 24 generated and 1 held-out"
    curve = [_evaluated(s, None, why) for s in (0, 3, 6)]
    curve.append(CurvePoint(8, 0.0))  # a divergence's closing point: no evaluation, no reason
    metrics, missing = unit_metrics(_result(curve, status="diverged", reason=None), evaluator=None)
    assert missing["fid_init"] == why
    assert missing["fid_best"].endswith(why)
    assert missing["fid_final"].endswith("reason not recorded")  # nothing was evaluated at step 8
    assert "non-finite" not in " ".join(missing.values())
    late = [_evaluated(3, 5.0), _evaluated(6, 4.0)]  # resumed past step 0's evaluation
    _, missing = unit_metrics(_result(late, status="diverged", reason="non-finite loss_g at step 6"),
                          evaluator=None)
    assert missing["fid_init"] == "the initialized generator was not evaluated"
    assert missing["fid_final"] == "non-finite loss_g at step 6"
