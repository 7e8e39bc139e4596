"""A unit interrupted after a checkpoint resumes from it and ends exactly where an uninterrupted
unit ends (CPU, fp32)."""

import pytest
import torch

import bench.train
from bench.nets import build_networks
from bench.metrics.evaluation import Evaluator
from bench.train import train_unit


def _unit(smoke_2d, cache_dir, checkpoint=None):
    _, s, data = smoke_2d
    G, D = build_networks(s, seed=3)
    ev = Evaluator(data, s, torch.device("cpu"), "fp32", cache_dir, progress=False)
    return train_unit(G, D, data, s, 3, torch.device("cpu"), "fp32", ev, checkpoint=checkpoint,
                      progress=False)


def _numbers(curve):
    return [(r["step"], r["fid"], r["loss_g"], r["loss_d"], r["d_acc_real"], r["msssim"])
            for r in curve]


def test_interrupted_unit_resumes_from_its_checkpoint(smoke_2d, cache_dir, tmp_path, monkeypatch):
    _, s, _ = smoke_2d
    assert s.steps == 2 * s.eval_every  # one checkpoint half-way
    reference = _unit(smoke_2d, cache_dir)

    checkpoint = tmp_path / "unit.pt"
    real_optimize = bench.train._optimize
    calls = []

    def interrupt_after_checkpoint(loss, opt, name, step, result):
        if step == s.eval_every:
            raise KeyboardInterrupt
        return real_optimize(loss, opt, name, step, result)

    monkeypatch.setattr(bench.train, "_optimize", interrupt_after_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        _unit(smoke_2d, cache_dir, checkpoint)
    assert checkpoint.exists()

    def counting(loss, opt, name, step, result):
        calls.append(step)
        return real_optimize(loss, opt, name, step, result)

    monkeypatch.setattr(bench.train, "_optimize", counting)
    resumed = _unit(smoke_2d, cache_dir, checkpoint)
    assert min(calls) == s.eval_every  # no step before the checkpoint was redone
    assert _numbers(resumed.curve) == _numbers(reference.curve)
    assert torch.equal(resumed.samples, reference.samples)


def test_a_damaged_checkpoint_restarts_the_unit(smoke_2d, cache_dir, tmp_path):
    checkpoint = tmp_path / "unit.pt"
    checkpoint.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="unreadable checkpoint"):
        result = _unit(smoke_2d, cache_dir, checkpoint)
    assert result.status == "ok" and result.curve[0]["step"] == 0


def test_a_checkpoint_measured_with_another_domain_encoder_restarts_the_unit(
        smoke_2d, cache_dir, tmp_path, monkeypatch):
    checkpoint = tmp_path / "unit.pt"
    _unit(smoke_2d, cache_dir, checkpoint)
    monkeypatch.setattr(Evaluator, "__init__", _other_encoder(Evaluator.__init__))
    real_optimize, calls = bench.train._optimize, []

    def counting(loss, opt, name, step, result):
        calls.append(step)
        return real_optimize(loss, opt, name, step, result)

    monkeypatch.setattr(bench.train, "_optimize", counting)
    with pytest.warns(UserWarning, match="measured with"):
        result = _unit(smoke_2d, cache_dir, checkpoint)
    assert min(calls) == 0 and result.curve[0]["step"] == 0  # trained again from step 0


def _other_encoder(init):
    def patched(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.identity += "-retrained"
    return patched
