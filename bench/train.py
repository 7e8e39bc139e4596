"""The fixed noise-to-image training loop. It never knows which strategy it runs.

Loss: non-saturating logistic GAN loss with lazy R1 on real images (Mescheder et al. 2018;
as StyleGAN2), Adam, batch size and step budget from the profile, optional EMA of G for
evaluation. A non-finite loss stops the unit and marks it diverged at that step.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from bench.device import autocast, fast_layout, seeded_generator
from bench.fid import RandomConvFeatures, frechet_distance
from bench.profiles import Settings


def _even_subset(images: torch.Tensor, n: int) -> torch.Tensor:
    """n images spread evenly over the set, so every held-out subject is represented."""
    idx = torch.linspace(0, len(images) - 1, n).round().long()
    return images[idx]


class Evaluator:
    """FID of generated images against held-out real test images, with a fixed sample count."""

    def __init__(self, data, settings: Settings, device: torch.device):
        self.n = min(settings.fid_samples, len(data.val.t1), len(data.test.t1))
        self.device = device
        self.features = RandomConvFeatures(settings.dims).to(device)
        self.real = self.features(_even_subset(data.test.t1, self.n).to(device)).cpu()
        self.val = _even_subset(data.val.t1, self.n)
        self.feature_net = self.features.name

    def floor(self) -> float:
        """FID of real validation vs real test images: what a perfect generator would score."""
        return frechet_distance(self.features(self.val.to(self.device)).cpu(), self.real)

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
        return frechet_distance(self.features(images).cpu(), self.real)


@dataclass
class UnitResult:
    status: str = "ok"
    reason: str | None = None
    diverged_step: int | None = None
    steps: int = 0
    train_seconds: float = 0.0
    curve: list[dict] = field(default_factory=list)
    samples: torch.Tensor | None = None

    def fids(self) -> list[tuple[int, float]]:
        return [(r["step"], r["fid"]) for r in self.curve if r.get("fid") is not None]


def _save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train_unit(G: torch.nn.Module, D: torch.nn.Module, data, s: Settings, seed: int,
               device: torch.device, precision: str, evaluator: Evaluator,
               checkpoint: Path | None = None, progress: bool = True, label: str = "") -> UnitResult:
    fast_layout(G.to(device), s.dims).train()
    fast_layout(D.to(device), s.dims).train()
    opt_g = torch.optim.Adam(G.parameters(), s.lr_g, betas=(s.beta1, s.beta2))
    opt_d = torch.optim.Adam(D.parameters(), s.lr_d, betas=(s.beta1, s.beta2))
    ema = (AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(s.ema_decay), use_buffers=True)
           if s.ema_decay > 0 else None)
    gen = seeded_generator(seed, 3)
    eval_z = torch.randn(evaluator.n, s.z_dim, generator=seeded_generator(seed, 4))
    real_all = data.train.t1.to(device)
    result, start_step = UnitResult(), 0

    if checkpoint is not None and checkpoint.exists():
        ck = torch.load(checkpoint, map_location=device, weights_only=False)
        G.load_state_dict(ck["G"]), D.load_state_dict(ck["D"])
        opt_g.load_state_dict(ck["opt_g"]), opt_d.load_state_dict(ck["opt_d"])
        if ema is not None:
            ema.load_state_dict(ck["ema"])
        gen.set_state(ck["gen"])
        result.curve, result.train_seconds, start_step = ck["curve"], ck["train_seconds"], ck["step"]

    def evaluate(step: int, loss_g: float | None, loss_d: float | None) -> None:
        samples = evaluator.generate(ema.module if ema is not None else G, eval_z, precision)
        result.samples = samples.cpu()
        result.curve.append({"step": step, "seconds": round(result.train_seconds, 3),
                             "fid": evaluator.fid(samples), "loss_g": loss_g, "loss_d": loss_d})
        if checkpoint is not None:
            _save_checkpoint(checkpoint, {
                "G": G.state_dict(), "D": D.state_dict(), "opt_g": opt_g.state_dict(),
                "opt_d": opt_d.state_dict(), "ema": ema.state_dict() if ema is not None else None,
                "gen": gen.get_state(), "curve": result.curve, "train_seconds": result.train_seconds,
                "step": step})

    if start_step == 0 and not result.curve:
        evaluate(0, None, None)
    bar = tqdm(range(start_step, s.steps), desc=label, disable=not progress, leave=False,
               initial=start_step, total=s.steps)
    loss_g = loss_d = None
    for step in bar:
        tic = time.perf_counter()
        real = real_all[torch.randint(len(real_all), (s.batch_size,), generator=gen)]
        z = torch.randn(s.batch_size, s.z_dim, generator=gen).to(device)
        with autocast(device, precision):
            with torch.no_grad():
                fake = G(z)
            loss_d_t = (F.softplus(D(fake).float()).mean() + F.softplus(-D(real).float()).mean())
        if step % s.r1_every == 0 and s.r1_gamma > 0:
            # Lazy R1 in fp32: the gradient penalty needs double backward and is sensitive to
            # rounding; scaling by r1_every keeps its average weight (StyleGAN2).
            real_r1 = real.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(D(real_r1).sum(), real_r1, create_graph=True)
            loss_d_t = loss_d_t + 0.5 * s.r1_gamma * s.r1_every * grad.pow(2).flatten(1).sum(1).mean()
        loss_d = float(loss_d_t.detach())
        if not torch.isfinite(loss_d_t):
            result.status, result.diverged_step = "diverged", step
            result.reason = f"non-finite loss_d at step {step}"
            break
        opt_d.zero_grad(set_to_none=True)
        loss_d_t.backward()
        opt_d.step()

        D.requires_grad_(False)
        with autocast(device, precision):
            loss_g_t = F.softplus(-D(G(torch.randn(s.batch_size, s.z_dim, generator=gen).to(device))).float()).mean()
        D.requires_grad_(True)
        loss_g = float(loss_g_t.detach())
        if not torch.isfinite(loss_g_t):
            result.status, result.diverged_step = "diverged", step
            result.reason = f"non-finite loss_g at step {step}"
            break
        opt_g.zero_grad(set_to_none=True)
        loss_g_t.backward()
        opt_g.step()
        if ema is not None:
            ema.update_parameters(G)
        result.train_seconds += time.perf_counter() - tic
        bar.set_postfix(loss_g=f"{loss_g:.3f}", loss_d=f"{loss_d:.3f}", refresh=False)
        if (step + 1) % s.eval_every == 0 or step + 1 == s.steps:
            evaluate(step + 1, loss_g, loss_d)
    bar.close()
    result.steps = result.diverged_step if result.status == "diverged" else s.steps
    if result.status == "diverged":
        result.curve.append({"step": result.diverged_step, "seconds": round(result.train_seconds, 3),
                             "fid": None, "loss_g": loss_g, "loss_d": loss_d})
    return result
