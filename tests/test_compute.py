"""FLOP counting, the compute-matched budgets and the baseline's training past the step budget."""

import json

import pandas as pd
import pytest
import torch
from torch import nn

from bench.compute import gan_flops, gan_step_flops, steps_for
from bench.flops import count_flops
from bench.pretext import pretext_flops, pretext_step_flops
from bench.profiles import get_settings
from bench.run import RunConfig, run
from bench.unit import baseline_budgets


def test_flops_of_a_small_conv_net_match_a_hand_count():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 8 * 8, 10))
    x = torch.zeros(2, 1, 8, 8)
    # Conv: 2 FLOPs per multiply-add, 4 x 1 x 3 x 3 per output pixel, 2 x 8 x 8 pixels; linear:
    # 2 x 256 x 10 per image. ReLU, bias and flatten count nothing.
    conv, linear = 2 * 4 * 9 * 2 * 64, 2 * 2 * 256 * 10
    with torch.no_grad():
        assert count_flops(lambda: net(x)) == conv + linear
    # Backward: weight gradients of both layers, the input gradient of the linear layer only
    # (the input image needs none).
    assert count_flops(lambda: net(x).sum().backward()) == 2 * conv + 3 * linear


def test_gan_flops_weight_the_lazy_r1_steps():
    s = get_settings("smoke", 2)
    per = gan_step_flops(s)
    assert per["step"] > 0 and per["r1"] > 0
    # R1 runs at steps 0, r1_every, ...: ceil(steps / r1_every) times.
    steps = 3 * s.r1_every + 1
    assert gan_flops(s, steps) == steps * per["step"] + 4 * per["r1"]
    assert gan_flops(s, 0) == 0


@pytest.mark.parametrize("dims", [2, 3])
def test_matched_budgets_arithmetic(dims):
    s = get_settings("smoke", dims)
    budgets = baseline_budgets(s, ["scratch", "cyclegan-t2t1", "pretrained-encoder"])
    assert set(budgets) == {"cyclegan-t2t1", "pretrained-encoder"}
    for name, pretext in (("cyclegan-t2t1", "cyclegan"), ("pretrained-encoder", "autoencoder")):
        b = budgets[name]
        assert b["flops"] == gan_flops(s, s.steps) + pretext_flops(pretext, s)
        # The fewest baseline steps whose FLOPs reach the strategy's total.
        assert gan_flops(s, b["step"]) >= b["flops"] > gan_flops(s, b["step"] - 1)
    assert pretext_flops("cyclegan", s) == s.pretext_steps * pretext_step_flops("cyclegan", s)
    assert steps_for(s, gan_flops(s, s.steps)) == s.steps


@pytest.mark.parametrize("profile,dims", [("smoke", 2), ("smoke", 3), ("quick", 2), ("quick", 3)])
def test_the_autoencoder_trains_for_the_cyclegans_flops(profile, dims):
    from bench.pretext import pretext_steps
    s = get_settings(profile, dims)
    steps, per = pretext_steps("autoencoder", s), pretext_step_flops("autoencoder", s)
    cyclegan = pretext_flops("cyclegan", s)
    # The fewest steps that reach the CycleGAN's FLOPs: within one autoencoder step of them.
    assert pretext_flops("autoencoder", s) == steps * per
    assert steps * per >= cyclegan > (steps - 1) * per
    assert steps > s.pretext_steps  # an autoencoder step costs less than a CycleGAN step


def test_budgets_leave_out_strategies_that_do_not_apply_to_the_task():
    two, three = (get_settings("smoke", d) for d in (2, 3))
    names = ["scratch", "cyclegan-t2t1", "cyclegan-2d-inflated"]
    assert set(baseline_budgets(two, names)) == {"cyclegan-t2t1"}
    budget = baseline_budgets(three, names)["cyclegan-2d-inflated"]
    assert budget["flops"] == gan_flops(three, three.steps) + pretext_flops("cyclegan-2d", three)


def _rows(out):
    return {r["strategy"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


def test_scratch_trains_on_to_each_budget_and_keeps_its_step_matched_result(tmp_path, cache_dir):
    base = RunConfig(strategies=["scratch"], tasks=["phantom-2d"], out=tmp_path / "alone",
                     profile="smoke", seeds=1, device="cpu", precision="fp32",
                     cache_dir=cache_dir, progress=False)
    run(base)
    alone = _rows(base.out)["scratch"]
    assert alone["budgets"] is None and "extension" not in alone["compute"]

    out = tmp_path / "both"
    run(RunConfig(**{**base.__dict__, "out": out, "strategies": ["scratch", "cyclegan-t2t1"]}))
    rows = _rows(out)
    scratch, transfer = rows["scratch"], rows["cyclegan-t2t1"]
    # Training on past the step budget changes nothing of the step-matched result.
    assert scratch["metrics"]["fid_final"] == pytest.approx(alone["metrics"]["fid_final"])
    assert scratch["steps"] == alone["steps"]
    pd.testing.assert_frame_equal(pd.read_csv(out / scratch["files"]["curve"]).drop(columns="seconds"),
                                  pd.read_csv(base.out / alone["files"]["curve"]).drop(columns="seconds"))

    s = get_settings("smoke", 2)
    budget = scratch["budgets"]["cyclegan-t2t1"]
    assert budget["status"] == "ok" and budget["flops"] == transfer["compute"]["total_flops"]
    assert budget["step"] == baseline_budgets(s, ["cyclegan-t2t1"])["cyclegan-t2t1"]["step"]
    assert budget["step"] > s.steps and budget["fid_final"] is not None
    assert budget["coverage"] is not None and budget["kid_mean"] is not None
    extension = pd.read_csv(out / scratch["files"]["extension_curve"])
    assert extension["step"].min() > s.steps and extension["step"].max() == budget["step"]
    assert extension.loc[extension["step"] == budget["step"], "fid"].item() == pytest.approx(
        budget["fid_final"])
    assert scratch["compute"]["extension"]["steps"] == budget["step"] - s.steps

    # Compute per row: the GAN's, each pretext's, their sum; curves count the pretext from step 0.
    cyc = pretext_flops("cyclegan", s)
    assert transfer["compute"]["pretexts"]["cyclegan"]["flops"] == cyc
    assert transfer["compute"]["total_flops"] == transfer["compute"]["gan_flops"] + cyc
    assert transfer["compute"]["pretexts"]["cyclegan"]["seconds"] > 0
    curve = pd.read_csv(out / transfer["files"]["curve"])
    assert curve["flops"].iloc[0] == cyc and curve["flops"].iloc[-1] == cyc + gan_flops(s, s.steps)
    assert transfer["compute"]["evaluation_flops"] > 0


def test_a_budget_reached_before_the_extension_diverged_keeps_its_values():
    """Diverging right after the evaluation at one budget marks only the later budgets."""
    from types import SimpleNamespace

    from bench.records import CurvePoint, Evaluation
    from bench.train import UnitResult
    from bench.unit import metrics_at_budgets
    s = get_settings("smoke", 2)
    first, second = s.steps + 2, s.steps + 4
    def evaluated(step: int, fid: float) -> CurvePoint:
        return CurvePoint(step, 0.0, 1.0, 1.0, Evaluation(fid, d_acc_real=1.0, d_acc_fake=1.0))

    result = UnitResult(steps=s.steps, curve=[evaluated(s.steps, 9.0)],
                        extension=[evaluated(first, 7.0),
                                   CurvePoint(first, 0.0)],  # the loss at `first` failed
                        extension_diverged_step=first,
                        budget_samples={first: torch.zeros(2, 1, s.image_size, s.image_size)})
    evaluator = SimpleNamespace(final=lambda samples: ({"coverage": 0.5}, {}))
    budgets = {"a": {"flops": 1, "step": first}, "b": {"flops": 2, "step": second},
               "c": {"flops": 0, "step": s.steps}}
    out = metrics_at_budgets(result, {"fid_final": 9.0, "coverage": 0.4, "fid_auc": 10.0}, budgets, s,
                      evaluator)
    assert out["a"]["status"] == "ok" and out["a"]["fid_final"] == 7.0 and out["a"]["coverage"] == 0.5
    assert out["b"]["status"] == "diverged"
    assert out["c"] == {**out["c"], "status": "ok", "fid_final": 9.0, "coverage": 0.4}
    assert "fid_auc" not in out["c"]
    # A budget the loop never evaluated (a checkpoint planned with other budgets) is missing.
    result.extension_diverged_step, result.extension = None, result.extension[:1]
    assert metrics_at_budgets(result, {}, {"b": budgets["b"]}, s, evaluator)["b"]["status"] == "not evaluated"
