"""The fixed noise-to-image training loop. It never knows which strategy it runs.

Loss: non-saturating logistic GAN loss with lazy R1 on real images (Mescheder et al. 2018;
as StyleGAN2), Adam, batch size and step budget from the profile, optional EMA of G for
evaluation. The recipe (bench/profiles.toml) adds differentiable augmentation of what D sees and
sets how R1 reduces D's patches. A non-finite loss stops the unit and marks it diverged at that step.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from bench.augment import augment, check_policy, check_probability
from bench.device import autocast, fast_layout, seeded_generator, synchronize
from bench.metrics.evaluation import D_ACCURACY_IMAGES, Evaluator
from bench.metrics.registry import LEADING
from bench.movement import PARTS, snapshot, weight_movement
from bench.profiles import Settings
from bench.records import CurvePoint
from bench.tensorboard_log import UnitLog
from ground.atomic import atomic_path


@dataclass
class UnitResult:
    status: str = "ok"
    reason: str | None = None
    diverged_step: int | None = None
    steps: int = 0
    resumed_step: int = 0  # the checkpoint's step when the unit resumed from one
    train_seconds: float = 0.0
    curve: list[CurvePoint] = field(default_factory=list)
    samples: torch.Tensor | None = None
    # Training on past the common step budget (the baseline, to other strategies' compute):
    # the evaluations after `steps`, the samples at each budget step, where it stopped if it
    # diverged there, and its seconds. None of it changes the step-matched result above.
    extension: list[CurvePoint] = field(default_factory=list)
    budget_samples: dict[int, torch.Tensor] = field(default_factory=dict)
    extension_diverged_step: int | None = None
    extension_seconds: float = 0.0
    # Per part of G and D, how far the weights moved from their start by the common step budget
    # (or the divergence): bench.movement.
    movement: dict[str, float | None] | None = None

    def fids(self) -> list[tuple[int, float]]:
        return [(p.step, p.get(LEADING)) for p in self.curve if p.get(LEADING) is not None]


def _save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_checkpoint(path: Path | None) -> dict | None:
    if path is None or not path.exists():
        return None
    try:
        # On CPU first: the RNG state must stay a CPU tensor; load_state_dict moves the rest.
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a damaged checkpoint costs the unit's progress, not the run
        warnings.warn(f"ignoring unreadable checkpoint {path} ({err}); the unit starts again")
        return None


# Where each part of a strategy's transfer report lives: (network, parameter prefix).
# "discriminator" is D's body; its head is never transferred (bench.nets.PatchDiscriminator).
TRANSFER_PREFIXES = {part: where for part, where in PARTS.items() if part != "head"}


def transferred_prefixes(transferred: dict[str, int] | None, net: str) -> list[str]:
    """The parameter prefixes of `net` ("G" or "D") a strategy's transfer report moved."""
    return [TRANSFER_PREFIXES[part][1] for part, count in (transferred or {}).items()
            if part in TRANSFER_PREFIXES and count and TRANSFER_PREFIXES[part][0] == net]


def adam(net: torch.nn.Module, lr: float, s: Settings, prefixes: list[str]) -> torch.optim.Adam:
    """Adam with the parameters under `prefixes` (the transferred ones) at lr x
    transfer_lr_scale; a single group when nothing is scaled."""
    if s.transfer_lr_scale == 1.0 or not prefixes:
        return torch.optim.Adam(net.parameters(), lr, betas=(s.beta1, s.beta2))
    moved, kept = [], []
    for name, param in net.named_parameters():
        inside = any(name == q or name.startswith(q + ".") for q in prefixes)
        (moved if inside else kept).append(param)
    groups = [{"params": moved, "lr": lr * s.transfer_lr_scale}]
    groups += [{"params": kept}] if kept else []
    return torch.optim.Adam(groups, lr, betas=(s.beta1, s.beta2))


def _optimize(loss: torch.Tensor, opt: torch.optim.Optimizer, name: str, step: int,
              result: UnitResult, steps: int) -> float | None:
    """One optimizer step; a non-finite loss instead marks the unit diverged, or its extension
    past the common `steps` (returns None)."""
    value = float(loss.detach())
    if not torch.isfinite(loss):
        if step >= steps:
            result.extension_diverged_step = step
        else:
            result.status, result.diverged_step = "diverged", step
            result.reason = f"non-finite {name} at step {step}"
        return None
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return value


Augment = Callable[[torch.Tensor], torch.Tensor]


def _same(x: torch.Tensor) -> torch.Tensor:
    return x


def d_loss(G: torch.nn.Module, D: torch.nn.Module, z: torch.Tensor, real: torch.Tensor,
           device: torch.device, precision: str, aug: Augment = _same) -> torch.Tensor:
    """The discriminator's logistic loss on one batch (G's fakes made without a graph), D seeing
    every image through `aug`."""
    with autocast(device, precision):
        with torch.no_grad():
            fake = G(z)
        return F.softplus(D(aug(fake)).float()).mean() + F.softplus(-D(aug(real)).float()).mean()


def d_score(D: torch.nn.Module, x: torch.Tensor, s: Settings) -> torch.Tensor:
    """What R1 differentiates: D's patch outputs summed (plain), or averaged per image as the
    loss averages them. A sum makes the penalty (patches)^2 times the loss's scale: at 36
    patches (quick 2D) or 216 (quick 3D) even r1_gamma 0.01 held D at chance."""
    out = D(x)
    return out.sum() if s.r1_reduction == "sum" else out.flatten(1).mean(1).sum()


def input_gradient(D: torch.nn.Module, x: torch.Tensor, s: Settings) -> torch.Tensor:
    (grad,) = torch.autograd.grad(d_score(D, x, s), x, create_graph=True)
    return grad


def r1_loss(D: torch.nn.Module, real: torch.Tensor, s: Settings,
            gradient: Callable = input_gradient) -> torch.Tensor:
    """Lazy R1 in fp32: the gradient penalty needs double backward and is sensitive to rounding;
    scaling by r1_every keeps its average weight (StyleGAN2). `real` as D saw it (augmented, as
    StyleGAN2-ADA penalizes)."""
    grad = gradient(D, real.detach().requires_grad_(True), s)
    return 0.5 * s.r1_gamma * s.r1_every * grad.pow(2).flatten(1).sum(1).mean()


def r1_due(step: int, s: Settings) -> bool:
    return step % s.r1_every == 0 and s.r1_gamma > 0


def mode_seeking(fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mao et al. 2019's mode-seeking term: the inverse of how far apart the images of two noise
    vectors are, per unit of distance between the vectors (the batch's halves are the pairs).
    It is large when G draws the same image whatever z is, which is how the trunk (an
    image-to-image network) collapses."""
    half = len(z) // 2  # an odd batch leaves its last image out; a batch of one has no pair
    if half == 0:
        return fake.new_zeros((), dtype=torch.float32)
    x, z = fake.float().flatten(1), z.float()
    ratio = ((x[:half] - x[half:2 * half]).abs().mean(1)
             / (z[:half] - z[half:2 * half]).abs().mean(1))
    return 1.0 / (ratio.mean() + 1e-5)


def g_loss(G: torch.nn.Module, D: torch.nn.Module, z: torch.Tensor, device: torch.device,
           precision: str, aug: Augment = _same, seeking: float = 0.0) -> torch.Tensor:
    """The generator's non-saturating loss (call with D's parameters frozen), plus `seeking`
    times the mode-seeking term."""
    with autocast(device, precision):
        fake = G(z)
        loss = F.softplus(-D(aug(fake)).float()).mean()
    return loss + seeking * mode_seeking(fake, z) if seeking else loss


@dataclass
class _Nets:
    """What a training step changes, and what a checkpoint saves and a resume restores."""

    G: torch.nn.Module
    D: torch.nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    ema: AveragedModel | None
    gen: torch.Generator

    @property
    def evaluated(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.G

    def state(self) -> dict:
        return {"G": self.G.state_dict(), "D": self.D.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "gen": self.gen.get_state()}

    def restore(self, ck: dict) -> None:
        self.G.load_state_dict(ck["G"]), self.D.load_state_dict(ck["D"])
        self.opt_g.load_state_dict(ck["opt_g"]), self.opt_d.load_state_dict(ck["opt_d"])
        if self.ema is not None:
            self.ema.load_state_dict(ck["ema"])
        self.gen.set_state(ck["gen"])


def _build_nets(G: torch.nn.Module, D: torch.nn.Module, s: Settings, seed: int,
                transferred: dict[str, int] | None, device: torch.device) -> _Nets:
    fast_layout(G.to(device), s.dims).train()
    fast_layout(D.to(device), s.dims).train()
    opt_g = adam(G, s.lr_g, s, transferred_prefixes(transferred, "G"))
    opt_d = adam(D, s.lr_d, s, transferred_prefixes(transferred, "D"))
    ema = (AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(s.ema_decay), use_buffers=True)
           if s.ema_decay > 0 else None)
    return _Nets(G, D, opt_g, opt_d, ema, seeded_generator(seed, 3))


def _usable_checkpoint(checkpoint: Path | None, evaluator: Evaluator) -> dict | None:
    ck = _load_checkpoint(checkpoint)
    if ck is not None and ck.get("metric") != evaluator.identity:
        # Its curve was measured with another domain encoder: mixing the two would be wrong.
        warnings.warn(f"ignoring checkpoint {checkpoint}: its curve was measured with "
                      f"{ck.get('metric')}, not {evaluator.identity}; the unit starts again")
        return None
    return ck


def _resume(nets: _Nets, ck: dict, result: UnitResult) -> int:
    """Networks, optimizers, EMA, random stream and the evaluations so far, as the checkpoint
    left them; its step."""
    nets.restore(ck)
    result.curve = [CurvePoint.from_row(r) for r in ck["curve"]]
    result.extension = [CurvePoint.from_row(r) for r in ck.get("extension", [])]
    result.train_seconds = ck["train_seconds"]
    result.budget_samples = ck.get("budget_samples", {})
    result.extension_seconds = ck.get("extension_seconds", 0.0)
    result.movement = ck.get("movement")
    result.resumed_step = ck["step"]
    return ck["step"]


def _progress(result: UnitResult, step: int, s: Settings, evaluator: Evaluator) -> dict:
    """The checkpoint's record of the evaluations so far (the networks' state aside)."""
    return {"curve": [p.row() for p in result.curve], "train_seconds": result.train_seconds,
            "step": step, "metric": evaluator.identity,
            "extension": [p.row() for p in result.extension],
            "budget_samples": result.budget_samples,
            "extension_seconds": result.extension_seconds, "movement": result.movement,
            "samples": result.samples if step > s.steps else None}


def _train_step(nets: _Nets, real_all: torch.Tensor, s: Settings, step: int, device: torch.device,
                precision: str, aug: Augment, result: UnitResult
                ) -> tuple[float | None, float | None]:
    """One D step (with R1 when due), then one G step and the EMA: the two losses, the first
    non-finite one None (the unit stops there; the other is the last finite value)."""
    G, D, gen = nets.G, nets.D, nets.gen
    real = real_all[torch.randint(len(real_all), (s.batch_size,), generator=gen)]
    z = torch.randn(s.batch_size, s.z_dim, generator=gen).to(device)
    loss_d_t = d_loss(G, D, z, real, device, precision, aug)
    if r1_due(step, s):
        loss_d_t = loss_d_t + r1_loss(D, aug(real), s)
    loss_d = _optimize(loss_d_t, nets.opt_d, "loss_d", step, result, s.steps)
    if loss_d is None:
        return None, None
    D.requires_grad_(False)
    z = torch.randn(s.batch_size, s.z_dim, generator=gen).to(device)
    loss_g_t = g_loss(G, D, z, device, precision, aug, s.mode_seeking)
    D.requires_grad_(True)
    loss_g = _optimize(loss_g_t, nets.opt_g, "loss_g", step, result, s.steps)
    if loss_g is None:
        return loss_d, None
    if nets.ema is not None:
        nets.ema.update_parameters(G)
    return loss_d, loss_g


def _close(result: UnitResult, s: Settings, loss_g: float | None, loss_d: float | None,
           start: dict, nets: _Nets) -> None:
    """The unit's step count, and the closing rows of a divergence (in training or past the
    common budget)."""
    result.steps = result.diverged_step if result.status == "diverged" else s.steps
    if result.extension_diverged_step is not None:
        result.extension.append(CurvePoint(
            result.extension_diverged_step,
            round(result.train_seconds + result.extension_seconds, 3), loss_g, loss_d))
    if result.status == "diverged":
        # The optimizer never stepped on the non-finite loss: the weights are where it stopped.
        result.movement = weight_movement(start, nets.G, nets.D)
        result.curve.append(CurvePoint(result.diverged_step, round(result.train_seconds, 3),
                                       loss_g, loss_d))


def train_unit(G: torch.nn.Module, D: torch.nn.Module, data, s: Settings, seed: int,
               device: torch.device, precision: str, evaluator: Evaluator,
               checkpoint: Path | None = None, progress: bool = True, label: str = "",
               on_evaluate: Callable[[int, float | None], None] | None = None,
               transferred: dict[str, int] | None = None,
               budget_steps: tuple[int, ...] = (), log: UnitLog | None = None) -> UnitResult:
    """`on_evaluate(step, domain FID)` after each evaluation (a tuner reports it to its pruner);
    a unit resumed from its checkpoint first replays the checkpoint's evaluations.
    `transferred`: the strategy's transfer report; its parts train at lr x transfer_lr_scale.
    `budget_steps`: train on past `s.steps` to the largest, on the same evaluation schedule,
    evaluating at each (UnitResult.extension, budget_samples). `log`: where every evaluation's
    TensorBoard events go."""
    if any(step < s.steps for step in budget_steps):
        # An evaluation inside the common budget would change the step-matched curve.
        raise ValueError(f"budget steps {sorted(budget_steps)} must not be below {s.steps}")
    nets = _build_nets(G, D, s, seed, transferred, device)
    eval_z = torch.randn(evaluator.n, s.z_dim, generator=seeded_generator(seed, 4))
    ops = check_policy(s.augment)
    p = check_probability(s.augment_p)
    aug = (lambda x: augment(x, ops, nets.gen, p)) if ops else _same
    real_all = data.train.t1.to(device)
    result, start_step = UnitResult(), 0
    start = snapshot(G, D)  # where the strategy put them: a resumed unit is rebuilt there too

    ck = _usable_checkpoint(checkpoint, evaluator)
    if ck is not None:
        start_step = _resume(nets, ck, result)
    if log is not None:
        log.start(start_step, resumed=ck is not None)
    if ck is not None:
        # The samples of the checkpoint's evaluation, as an uninterrupted unit holds them: they
        # are what gets saved if the unit ends (or diverges) before its next evaluation. Past
        # the common budget, G has moved on: the step-matched samples come from the checkpoint.
        result.samples = (ck["samples"] if start_step > s.steps
                          else evaluator.generate(nets.evaluated, eval_z, precision).cpu())
        for point in result.curve if on_evaluate is not None else ():
            on_evaluate(point.step, point.get(LEADING))  # a new listener hears what it missed

    def evaluate(step: int, loss_g: float | None, loss_d: float | None) -> None:
        samples = evaluator.generate(nets.evaluated, eval_z, precision)
        fakes = evaluator.generate(G, eval_z[:D_ACCURACY_IMAGES], precision)
        point = CurvePoint(step, round(result.train_seconds + result.extension_seconds, 3),
                           loss_g, loss_d, evaluator.track(samples, fakes, D, precision))
        if log is not None:
            log(point.row(), samples)
        if step == s.steps:
            result.movement = weight_movement(start, G, D)
        if step <= s.steps:
            result.samples = samples.cpu()
            result.curve.append(point)
        else:
            result.extension.append(point)
        if step in budget_steps:
            result.budget_samples[step] = samples.cpu()
        if checkpoint is not None:
            _save_checkpoint(checkpoint, {**nets.state(), **_progress(result, step, s, evaluator)})
        if on_evaluate is not None and step <= s.steps:
            on_evaluate(step, point.get(LEADING))

    if start_step == 0 and not result.curve:
        evaluate(0, None, None)
    total = max([s.steps, *budget_steps])
    bar = tqdm(range(start_step, total), desc=label, disable=not progress, leave=False,
               initial=start_step, total=total)
    loss_g = loss_d = None
    for step in bar:
        tic = time.perf_counter()
        new_d, new_g = _train_step(nets, real_all, s, step, device, precision, aug, result)
        # As the closing row of a divergence records them: the failed loss None, the other
        # the last finite one.
        loss_d = new_d
        if new_d is None:
            break
        loss_g = new_g
        if new_g is None:
            break
        synchronize(device)  # a GPU queues work: the clock counts it once it is done
        if step < s.steps:
            result.train_seconds += time.perf_counter() - tic
        else:
            result.extension_seconds += time.perf_counter() - tic
        bar.set_postfix(loss_g=f"{loss_g:.3f}", loss_d=f"{loss_d:.3f}", refresh=False)
        if (step + 1) % s.eval_every == 0 or step + 1 == s.steps or step + 1 in budget_steps:
            evaluate(step + 1, loss_g, loss_d)
    bar.close()
    _close(result, s, loss_g, loss_d, start, nets)
    return result
