"""A unit interrupted after a checkpoint resumes from it and ends exactly where an uninterrupted
unit ends (CPU, fp32)."""

import pytest
import torch

import bench.train
from bench.nets import build_networks
from bench.metrics.evaluation import Evaluator
from bench.train import train_unit


def _unit(smoke_2d, cache_dir, checkpoint=None, budget_steps=()):
    _, s, data = smoke_2d
    G, D = build_networks(s, seed=3)
    ev = Evaluator(data, s, torch.device("cpu"), "fp32", cache_dir, progress=False)
    return train_unit(G, D, data, s, 3, torch.device("cpu"), "fp32", ev, checkpoint=checkpoint,
                      progress=False, budget_steps=budget_steps)


def _numbers(curve):
    return [(p.step, p.get("fid"), p.loss_g, p.loss_d, p.get("d_acc_real"), p.get("msssim"))
            for p in curve]


def test_interrupted_unit_resumes_from_its_checkpoint(smoke_2d, cache_dir, tmp_path, monkeypatch):
    _, s, _ = smoke_2d
    assert s.steps == 2 * s.eval_every  # one checkpoint half-way
    reference = _unit(smoke_2d, cache_dir)

    checkpoint = tmp_path / "unit.pt"
    real_optimize = bench.train._optimize
    calls = []

    def interrupt_after_checkpoint(loss, opt, name, step, *rest):
        if step == s.eval_every:
            raise KeyboardInterrupt
        return real_optimize(loss, opt, name, step, *rest)

    monkeypatch.setattr(bench.train, "_optimize", interrupt_after_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        _unit(smoke_2d, cache_dir, checkpoint)
    assert checkpoint.exists()

    def counting(loss, opt, name, step, *rest):
        calls.append(step)
        return real_optimize(loss, opt, name, step, *rest)

    monkeypatch.setattr(bench.train, "_optimize", counting)
    resumed = _unit(smoke_2d, cache_dir, checkpoint)
    assert min(calls) == s.eval_every  # no step before the checkpoint was redone
    assert _numbers(resumed.curve) == _numbers(reference.curve)
    assert torch.equal(resumed.samples, reference.samples)


def test_a_unit_interrupted_past_the_step_budget_resumes_there(smoke_2d, cache_dir, tmp_path,
                                                              monkeypatch):
    """The baseline's training on to other strategies' compute budgets resumes like the rest,
    and keeps the step-matched samples it made before."""
    _, s, _ = smoke_2d
    budget = s.steps + 2 * s.eval_every
    reference = _unit(smoke_2d, cache_dir, budget_steps=(budget,))
    assert [p.step for p in reference.extension] == [s.steps + s.eval_every, budget]
    checkpoint = tmp_path / "unit.pt"
    real_optimize, calls = bench.train._optimize, []

    def interrupt(loss, opt, name, step, *rest):
        if step == s.steps + s.eval_every:
            raise KeyboardInterrupt
        calls.append(step)
        return real_optimize(loss, opt, name, step, *rest)

    monkeypatch.setattr(bench.train, "_optimize", interrupt)
    with pytest.raises(KeyboardInterrupt):
        _unit(smoke_2d, cache_dir, checkpoint, (budget,))
    monkeypatch.setattr(bench.train, "_optimize", real_optimize)
    resumed = _unit(smoke_2d, cache_dir, checkpoint, (budget,))
    assert resumed.resumed_step == s.steps + s.eval_every
    assert _numbers(resumed.curve) == _numbers(reference.curve)
    assert _numbers(resumed.extension) == _numbers(reference.extension)
    assert torch.equal(resumed.samples, reference.samples)
    assert torch.equal(resumed.budget_samples[budget], reference.budget_samples[budget])


def test_a_damaged_checkpoint_restarts_the_unit(smoke_2d, cache_dir, tmp_path):
    checkpoint = tmp_path / "unit.pt"
    checkpoint.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="unreadable checkpoint"):
        result = _unit(smoke_2d, cache_dir, checkpoint)
    assert result.status == "ok" and result.curve[0].step == 0


def test_a_checkpoint_measured_with_another_domain_encoder_restarts_the_unit(
        smoke_2d, cache_dir, tmp_path, monkeypatch):
    checkpoint = tmp_path / "unit.pt"
    _unit(smoke_2d, cache_dir, checkpoint)
    monkeypatch.setattr(Evaluator, "__init__", _other_encoder(Evaluator.__init__))
    real_optimize, calls = bench.train._optimize, []

    def counting(loss, opt, name, step, *rest):
        calls.append(step)
        return real_optimize(loss, opt, name, step, *rest)

    monkeypatch.setattr(bench.train, "_optimize", counting)
    with pytest.warns(UserWarning, match="measured with"):
        result = _unit(smoke_2d, cache_dir, checkpoint)
    assert min(calls) == 0 and result.curve[0].step == 0  # trained again from step 0


def _other_encoder(init):
    def patched(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.identity += "-retrained"
    return patched


def test_the_final_metrics_reuse_the_last_evaluations_features(smoke_2d, cache_dir):
    from bench.metrics.registry import Sample
    _, s, data = smoke_2d
    ev = Evaluator(data, s, torch.device("cpu"), "fp32", cache_dir, progress=False)
    G, D = build_networks(s, seed=3)
    samples = ev.generate(G, torch.randn(ev.n, s.z_dim), "fp32")
    ev.track(samples, samples[:4], D, "fp32")
    fresh, _ = ev._final(Sample(samples.clone()))  # what the final metrics are, computed anew
    seen = []
    domain = ev.ref.domain
    ev.ref.domain = lambda images: seen.append(images) or domain(images)
    final, _ = ev.final(samples.clone())  # the unit's final samples: its last evaluation's
    assert not any(x.shape == samples.shape and torch.equal(x, samples) for x in seen)
    assert {k: v for k, v in final.items() if k != "msssim_real"} == fresh
    other = samples.flip(0)  # other images: measured anew
    ev.final(other)
    assert any(torch.equal(x, other) for x in seen)
