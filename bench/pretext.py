"""Pretext training: the models whose weights strategies start from.

Built from the same classes as the noise-to-image trunk and discriminator, so weights map one to
one. Each pretext is trained once per (task data, settings, seed, precision), cached on disk and
shared by every strategy of a seed (by default seed k of a run uses pretext seed k). Artifacts record what they cost and how good they are.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from monai.metrics import PSNRMetric, SSIMMetric
from tqdm.auto import tqdm

from bench.artifacts import load_or_train, nonfinite, weights_digest
from bench.device import autocast, by_voxels, fast_layout, seeded_generator, synchronize
from bench.flops import META, count_flops, meta_batch
from bench.metrics.fid import even_subset
from bench.nets import PatchDiscriminator, ResnetTrunk, init_weights
from bench.profiles import Settings
from ground.errors import BenchError

ARTIFACT_VERSION = 3  # 3: the autoencoder's steps match the CycleGAN's FLOPs


class PretextDiverged(RuntimeError):
    """A pretext whose training ended with non-finite weights: a training outcome (the units
    started from it count as lost), unlike a crash, which is rerun."""


@dataclass
class PretextArtifact:
    name: str
    key: str
    state: dict[str, dict[str, torch.Tensor]]
    info: dict = field(default_factory=dict)


@dataclass
class PretextContext:
    data: object            # datasets.TaskData
    settings: Settings
    seed: int
    device: torch.device
    precision: str
    progress: bool = True
    name: str = ""  # the pretext's name, for its progress bar


def _trunk(s: Settings, device: torch.device) -> ResnetTrunk:
    trunk = ResnetTrunk(s.dims, s.ngf, s.n_blocks, upsample=s.upsample)
    return fast_layout(init_weights(trunk).to(device), s.dims)


def _disc(s: Settings, device: torch.device) -> PatchDiscriminator:
    return fast_layout(init_weights(PatchDiscriminator(s.dims, s.image_size, s.ndf)).to(device), s.dims)


class ImagePool:
    """CycleGAN's history of generated images: D sees older fakes half of the time."""

    def __init__(self, size: int, gen: torch.Generator):
        self.size, self.gen, self.images = size, gen, []

    def query(self, batch: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return batch.detach()
        out = []
        for img in batch.detach():
            if len(self.images) < self.size:
                self.images.append(img)
                out.append(img)
            elif torch.rand((), generator=self.gen) < 0.5:
                i = int(torch.randint(self.size, (), generator=self.gen))
                out.append(self.images[i])
                self.images[i] = img
            else:
                out.append(img)
        return torch.stack(out)


def _linear_decay(total: int) -> Callable[[int], float]:
    half = total // 2
    return lambda step: 1.0 if step < half else max(0.0, 1.0 - (step - half) / max(1, total - half))


@torch.no_grad()
def translation_quality(g_t2t1: torch.nn.Module, val, ctx: PretextContext, limit: int = 240) -> dict:
    """SSIM and PSNR of T2->T1 against the paired real T1 of validation subjects, next to the
    same for the untranslated T2 (the identity), which places the numbers."""
    s = ctx.settings
    n = min(limit, len(val.t1))
    t2, t1 = even_subset(val.t2, n), even_subset(val.t1, n)
    ssim = SSIMMetric(spatial_dims=s.dims, data_range=2.0, win_size=min(11, s.image_size // 2 * 2 - 1))
    psnr = PSNRMetric(max_val=2.0)
    scores: dict[str, list[torch.Tensor]] = {k: [] for k in ("ssim", "psnr", "ssim_identity",
                                                             "psnr_identity")}
    g_t2t1.eval()
    for a, b in zip(by_voxels(t2), by_voxels(t1)):  # per image: chunks give the same means
        a, b = a.to(ctx.device), b.to(ctx.device)
        fake = g_t2t1(a).float()
        for name, metric, x in (("ssim", ssim, fake), ("psnr", psnr, fake),
                                ("ssim_identity", ssim, a), ("psnr_identity", psnr, a)):
            scores[name].append(metric(x, b).flatten().cpu())
    g_t2t1.train()
    return {**{k: float(torch.cat(v).mean()) for k, v in scores.items()},
            "eval_images": int(t1.shape[0])}


def _lsgan(pred: torch.Tensor, real: bool) -> torch.Tensor:
    return F.mse_loss(pred.float(), torch.full_like(pred.float(), 1.0 if real else 0.0))


def cyclegan_g_loss(nets: dict, real_t1: torch.Tensor, real_t2: torch.Tensor, s: Settings,
                    device: torch.device, precision: str) -> tuple[torch.Tensor, torch.Tensor,
                                                                   torch.Tensor]:
    """Both generators' loss (adversarial, cycle, identity) and the two fakes."""
    g_t2t1, g_t1t2, d_t1, d_t2 = (nets[k] for k in ("G_t2t1", "G_t1t2", "D_t1", "D_t2"))
    lam_cyc, lam_idt = s.cycle_weight, s.cycle_weight * s.identity_weight
    with autocast(device, precision):
        fake_t1, fake_t2 = g_t2t1(real_t2), g_t1t2(real_t1)
        d_t1.requires_grad_(False), d_t2.requires_grad_(False)
        loss = (_lsgan(d_t1(fake_t1), True) + _lsgan(d_t2(fake_t2), True)
                + lam_cyc * (F.l1_loss(g_t1t2(fake_t1).float(), real_t2)
                             + F.l1_loss(g_t2t1(fake_t2).float(), real_t1))
                + lam_idt * (F.l1_loss(g_t2t1(real_t1).float(), real_t1)
                             + F.l1_loss(g_t1t2(real_t2).float(), real_t2)))
    d_t1.requires_grad_(True), d_t2.requires_grad_(True)
    return loss, fake_t1, fake_t2


def cyclegan_d_loss(nets: dict, real_t1: torch.Tensor, real_t2: torch.Tensor,
                    fake_t1: torch.Tensor, fake_t2: torch.Tensor, device: torch.device,
                    precision: str) -> torch.Tensor:
    """Both discriminators' loss; the fakes come from the image pools, without a graph."""
    d_t1, d_t2 = nets["D_t1"], nets["D_t2"]
    with autocast(device, precision):
        return 0.5 * (_lsgan(d_t1(real_t1), True) + _lsgan(d_t1(fake_t1), False)
                      + _lsgan(d_t2(real_t2), True) + _lsgan(d_t2(fake_t2), False))


def cyclegan_nets(s: Settings, device: torch.device) -> dict:
    return {"G_t2t1": _trunk(s, device), "G_t1t2": _trunk(s, device),
            "D_t1": _disc(s, device), "D_t2": _disc(s, device)}


def train_cyclegan(ctx: PretextContext) -> tuple[dict, dict]:
    s, dev = ctx.settings, ctx.device
    torch.manual_seed(ctx.seed)
    nets = cyclegan_nets(s, dev)
    opt_g = torch.optim.Adam([*nets["G_t2t1"].parameters(), *nets["G_t1t2"].parameters()],
                             s.pretext_lr, betas=(s.pretext_beta1, s.pretext_beta2))
    opt_d = torch.optim.Adam([*nets["D_t1"].parameters(), *nets["D_t2"].parameters()],
                             s.pretext_lr, betas=(s.pretext_beta1, s.pretext_beta2))
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, _linear_decay(s.pretext_steps)) for o in (opt_g, opt_d)]
    gen = seeded_generator(ctx.seed, 1)
    pool_t1, pool_t2 = ImagePool(s.pool_size, gen), ImagePool(s.pool_size, gen)
    train = ctx.data.train
    t1_all, t2_all = train.t1.to(dev), train.t2.to(dev)

    for _ in tqdm(range(s.pretext_steps), desc=f"{ctx.name or 'cyclegan'} {ctx.data.spec.name}",
                  disable=not ctx.progress,
                  leave=False):
        # Unpaired sampling: T1 and T2 batches are drawn independently.
        real_t1 = t1_all[torch.randint(len(t1_all), (s.pretext_batch,), generator=gen)]
        real_t2 = t2_all[torch.randint(len(t2_all), (s.pretext_batch,), generator=gen)]
        loss_g, fake_t1, fake_t2 = cyclegan_g_loss(nets, real_t1, real_t2, s, dev, ctx.precision)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        loss_d = cyclegan_d_loss(nets, real_t1, real_t2, pool_t1.query(fake_t1),
                                 pool_t2.query(fake_t2), dev, ctx.precision)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        for sched in scheds:
            sched.step()
    state = {k: net.state_dict() for k, net in nets.items()}
    info = translation_quality(nets["G_t2t1"], ctx.data.val, ctx)
    info["final_loss_g"], info["final_loss_d"] = float(loss_g.detach()), float(loss_d.detach())
    return state, info


def autoencoder_loss(trunk: torch.nn.Module, clean: torch.Tensor, noisy: torch.Tensor,
                     device: torch.device, precision: str) -> torch.Tensor:
    with autocast(device, precision):
        return F.l1_loss(trunk(noisy).float(), clean)


def train_autoencoder(ctx: PretextContext) -> tuple[dict, dict]:
    """Non-adversarial pretraining of the same trunk: denoising reconstruction of T1 and T2.

    Denoising, because a trunk with a 4ngf-channel bottleneck at 1/4 resolution could otherwise
    learn the identity without learning anything about anatomy.
    """
    s, dev = ctx.settings, ctx.device
    torch.manual_seed(ctx.seed)
    trunk = _trunk(s, dev)
    opt = torch.optim.Adam(trunk.parameters(), s.pretext_lr, betas=(s.pretext_beta1, s.pretext_beta2))
    gen = seeded_generator(ctx.seed, 2)
    images = torch.cat([ctx.data.train.t1, ctx.data.train.t2]).to(dev)
    noise_std = 0.2
    for _ in tqdm(range(pretext_steps("autoencoder", s)), desc=f"autoencoder {ctx.data.spec.name}",
                  disable=not ctx.progress, leave=False):
        clean = images[torch.randint(len(images), (s.pretext_batch,), generator=gen)]
        noisy = clean + noise_std * torch.randn(clean.shape, generator=gen).to(dev)
        loss = autoencoder_loss(trunk, clean, noisy, dev, ctx.precision)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        val = ctx.data.val.t1[:64]
        noisy = val + noise_std * torch.randn(val.shape, generator=gen)
        errors = [(trunk(x.to(dev)).float() - y.to(dev)).abs().sum().cpu()
                  for x, y in zip(by_voxels(noisy), by_voxels(val))]
        val_l1 = float(torch.stack(errors).sum() / val.numel())
    return {"trunk": trunk.state_dict()}, {"val_l1": val_l1, "noise_std": noise_std}


def axial_slices(data):
    """A 3D task's data as its axial slices (every slice of every volume, subject ids kept): what
    the 2D CycleGAN of `cyclegan-2d` trains on. Same subjects, same splits."""
    from datasets.spec import SLICE_AXES

    axis = 2 + SLICE_AXES["axial"]  # volumes are [N, 1, S, S, S]

    def cut(split):
        t1, t2 = (x.movedim(axis, 1).flatten(0, 1) for x in (split.t1, split.t2))
        depth = split.t1.shape[axis]
        return dataclasses.replace(split, t1=t1.contiguous(), t2=t2.contiguous(),
                                   subject=split.subject.repeat_interleave(depth), modes=None)

    return dataclasses.replace(data, train=cut(data.train), val=cut(data.val), test=cut(data.test),
                               mode_columns=())


def slice_settings(s: Settings) -> Settings:
    """The settings of a 2D pretext for a 3D task: the 3D profile's trunk (ngf, n_blocks), its
    slice size and pretext budget, and as many voxels per batch as its 3D pretext sees (a
    batch of volumes' worth of slices)."""
    return dataclasses.replace(s, dims=2, pretext_batch=s.pretext_batch * s.image_size)


@dataclass(frozen=True)
class Pretext:
    """A pretext the harness can train: its training function, which step the compute
    accounting counts (`loss`: "cyclegan" or "autoencoder"), the task dims it applies to, and
    whether it trains on a 3D task's axial slices."""

    train: Callable[[PretextContext], tuple[dict, dict]]
    loss: str
    dims: tuple[int, ...] = (2, 3)
    on_slices: bool = False

    def settings(self, s: Settings) -> Settings:
        return slice_settings(s) if self.on_slices else s

    def context(self, ctx: PretextContext) -> PretextContext:
        """What the training function sees: the slices and their settings where it needs them."""
        if not self.on_slices:
            return ctx
        return dataclasses.replace(ctx, data=axial_slices(ctx.data), settings=self.settings(ctx.settings))


PRETEXTS: dict[str, Pretext] = {
    "cyclegan": Pretext(train_cyclegan, "cyclegan"),
    # Trains for as many FLOPs as the CycleGAN (pretext_steps below), so that "any
    # pretraining" is compared with the adversarial translation at the same cost.
    "autoencoder": Pretext(train_autoencoder, "autoencoder"),
    # A 2D CycleGAN on a 3D task's own axial slices, for the inflated 3D start.
    "cyclegan-2d": Pretext(train_cyclegan, "cyclegan", dims=(3,), on_slices=True),
}


def get_pretext_kind(name: str) -> Pretext:
    if name not in PRETEXTS:
        raise BenchError(f"unknown pretext '{name}'; known: {', '.join(sorted(PRETEXTS))}")
    return PRETEXTS[name]


@lru_cache(maxsize=None)
def pretext_step_flops(name: str, s: Settings) -> int:
    """One training step of pretext `name` on the task settings `s` (a 2D pretext of a 3D task
    counts its own 2D step), counted on the very losses it trains with (bench/flops.py)."""
    kind = get_pretext_kind(name)
    s = kind.settings(s)
    t1, t2 = (meta_batch(s.pretext_batch, s.dims, s.image_size) for _ in range(2))
    if kind.loss == "cyclegan":
        with META:
            nets = cyclegan_nets(s, META)

        def step() -> None:
            loss_g, fake_t1, fake_t2 = cyclegan_g_loss(nets, t1, t2, s, META, "fp32")
            loss_g.backward()
            cyclegan_d_loss(nets, t1, t2, fake_t1.detach(), fake_t2.detach(), META, "fp32").backward()
        return count_flops(step)
    with META:
        trunk = _trunk(s, META)
    return count_flops(lambda: autoencoder_loss(trunk, t1, t2, META, "fp32").backward())


def pretext_steps(name: str, s: Settings) -> int:
    """The autoencoder trains for the fewest steps whose FLOPs reach the CycleGAN's: a control
    for "any pretraining" at the adversarial translation's cost. The others train the profile's
    `pretext_steps`."""
    if name == "autoencoder":
        return math.ceil(pretext_flops("cyclegan", s) / pretext_step_flops("autoencoder", s))
    return s.pretext_steps


def pretext_flops(name: str, s: Settings) -> int:
    return pretext_steps(name, s) * pretext_step_flops(name, s)


# Only the numbers a pretext depends on: changing the GAN's own hyper-parameters (as tuning does)
# must reuse the same pretext.
PRETEXT_FIELDS = ("dims", "image_size", "ngf", "n_blocks", "upsample", "ndf", "pretext_steps",
                  "pretext_batch", "pretext_lr", "pretext_beta1", "pretext_beta2", "cycle_weight",
                  "identity_weight", "pool_size")


def pretext_key(name: str, ctx: PretextContext) -> str:
    used = {f: getattr(ctx.settings, f) for f in PRETEXT_FIELDS}
    blob = json.dumps({"name": name, "version": ARTIFACT_VERSION, "data": ctx.data.fingerprint,
                       "settings": used, "steps": pretext_steps(name, ctx.settings),
                       "seed": ctx.seed, "precision": ctx.precision, "device": ctx.device.type},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def get_pretext(name: str, ctx: PretextContext, cache_dir: Path) -> PretextArtifact:
    """Load the cached artifact or train it once; the file appears only when complete."""
    kind = get_pretext_kind(name)
    if ctx.settings.dims not in kind.dims:
        raise BenchError(f"pretext {name} applies to {' and '.join(f'{d}D' for d in kind.dims)} "
                         f"tasks only, not to {ctx.data.spec.name}; set the strategy's `dims`")
    key = pretext_key(name, ctx)
    path = Path(cache_dir) / "pretexts" / f"{ctx.data.spec.name}-{name}-{key}.pt"

    def train() -> dict:
        start = time.perf_counter()
        state, info = kind.train(kind.context(dataclasses.replace(ctx, name=name)))
        synchronize(ctx.device)
        bad = nonfinite({f"{k}.{n}": t for k, sd in state.items() for n, t in sd.items()})
        if bad:  # never cache, and never hand strategies, a diverged pretext
            raise PretextDiverged(f"non-finite weights after training ({bad[0]} and "
                                  f"{len(bad) - 1} more)")
        info = {"key": key, "steps": pretext_steps(name, ctx.settings),
                "seconds": round(time.perf_counter() - start, 2),
                "device": str(ctx.device), "precision": ctx.precision, **info}
        state = {k: {n: t.detach().cpu() for n, t in sd.items()} for k, sd in state.items()}
        return {"state": state, "info": info}

    def load(blob: dict) -> PretextArtifact:
        # Artifacts cached before these fields existed get them here (the digest is cheap).
        info = {"seed": ctx.seed, **blob["info"]}
        info.setdefault("weights", weights_digest(blob["state"]))
        return PretextArtifact(name, key, blob["state"], info)

    return load_or_train(path, "pretext", load, train)
