"""The domain feature encoder behind the "domain FID": a small 2D MONAI ResNet trained
self-supervised with SimCLR (Chen et al. 2020) on the task's real TRAINING T1 images only, never
on generated ones. Its architecture shares nothing with the GAN's generator or PatchGAN
discriminator, so no strategy's initialization is closer to the metric than another's. Trained
once per task and seed, cached by key, frozen.

Volumes are read 2.5D: SLICES_PER_PLANE slices of each of the three orthogonal planes, spread over
the central half of each axis, each a sample of the feature set (as the 2.5D Inception FID).
Why: in the validation suite (bench validate-metrics, quick profile) the FID of a natively 3D
ResNet, with 25 volumes a side, did not see added noise (1.5 standard deviations at the
strongest level) or shifts (0.1); on slices, 24 samples per volume, it saw both (10.7 and
10.4), and the orthogonal planes still show inconsistencies between neighbouring slices.

What the encoder must NOT be invariant to decides its training: SimCLR learns invariance to its
augmentations, so the leading encoder's are a small rotation only (`Views`: candidates that
also re-draw each view's noise or blur it are measured in docs/evaluation.md). With intensity
and noise augmentations the 2D FID barely saw contrast changes (2.9 standard deviations at the strongest gamma, against 41
without them); with a random scaling of 10% it was blind to the phantom's head size (12% apart,
a known mode): in 3D dropping up to all large heads moved it by -0.3 paired standard deviations.
POOL_GRID keeps a coarse layout of the last feature map.

Always fp32, whatever the run's precision: the encoder is a metric, so bf16 and fp32 runs must
share it (its key has no precision), and bf16 autocast training gave non-finite gradients in
about 1 of 25 steps (BatchNorm in the mix; fp32 never did).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from monai.losses import ContrastiveLoss
from monai.networks.nets import ResNet
from torch.optim.swa_utils import update_bn
from tqdm.auto import tqdm

from bench.artifacts import load_or_train, nonfinite
from bench.device import exact_features, seeded_generator
from bench.metrics.degrade import brain_mask
from bench.profiles import Settings
from ground.errors import BenchError

DOMAIN_VERSION = 4
LR, TEMPERATURE, PROJECTION = 1e-3, 0.2, 64
ROTATION = math.radians(10)


@dataclass(frozen=True)
class Views:
    """What SimCLR's two views of an image differ by, so what the encoder learns to ignore: a
    small rotation always; optionally fresh Gaussian noise inside the head (its standard
    deviation drawn per view, uniformly up to `noise`, of the [-1, 1] range) and a Gaussian blur
    (sigma drawn per view up to `blur` voxels at 64^2, scaled with the side). Re-drawn noise
    means two views no longer share the image's noise realization, so the encoder cannot tell
    images apart by their grain and must use their anatomy."""

    name: str
    noise: float = 0.0
    blur: float = 0.0


ROTATION_ONLY = Views("rotation")
# The leading metric's encoder: chosen on the validation suite alone (docs/evaluation.md, where
# the candidates with other views are measured against the anatomy check).
LEADING_VIEWS = ROTATION_ONLY
POOL_GRID = 2  # features from 2x2 cells of the last feature map (64^2 input: all of it), not one mean
SLICES_PER_PLANE = 8
CHUNK = 64  # images per encoder call


def domain_key(data, s: Settings, seed: int, views: Views = ROTATION_ONLY) -> str:
    blob = json.dumps({"data": data.fingerprint, "dims": s.dims, "image_size": s.image_size,
                       "steps": s.domain_steps, "batch": s.domain_batch, "features": s.domain_features,
                       "seed": seed, "version": DOMAIN_VERSION,
                       "views": dataclasses.asdict(views),
                       "slices": SLICES_PER_PLANE if s.dims == 3 else None}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _encoder(s: Settings) -> ResNet:
    planes = [16, 32, 64, 128]
    net = ResNet("basic", [1, 1, 1, 1], planes, spatial_dims=2, n_input_channels=1,
                 num_classes=s.domain_features)
    # MONAI's ResNet pools globally; its forward flattens whatever the pool leaves.
    net.avgpool = torch.nn.AdaptiveAvgPool2d(POOL_GRID)
    net.fc = torch.nn.Linear(planes[-1] * POOL_GRID ** 2, s.domain_features)
    return net


def as_slices(images: torch.Tensor) -> torch.Tensor:
    """2D images as they are; volumes [N, 1, D, H, W] as [N * 3 * SLICES_PER_PLANE, 1, ., .]:
    each volume's slices of the three planes, over the central half of each axis."""
    if images.ndim == 4:
        return images
    out = []
    for dim in (2, 3, 4):
        length = images.shape[dim]
        levels = torch.linspace(length / 4, 3 * length / 4 - 1, SLICES_PER_PLANE).round().long()
        out.append(images.index_select(dim, levels.to(images.device)).movedim(dim, 1))
    # [N, k, 1, a, b] per plane; a volume's slices stay together.
    return torch.cat(out, dim=1).flatten(0, 1)


def _blurred(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Each image [N, 1, H, W] under its own Gaussian blur (sigma per image, 0: unchanged), one
    grouped separable convolution for the batch (MONAI's GaussianFilter takes one sigma)."""
    radius = max(1, math.ceil(3 * float(sigma.max())))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    width = sigma.to(x.device, x.dtype).clamp_min(1e-3)[:, None]
    kernel = torch.exp(-0.5 * (offsets / width) ** 2)
    kernel = kernel / kernel.sum(1, keepdim=True)
    n = len(x)
    out = x.transpose(0, 1)  # [1, N, H, W]: one group per image
    out = F.conv2d(F.pad(out, (radius, radius, 0, 0), mode="replicate"), kernel.view(n, 1, 1, -1),
                   groups=n)
    out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), kernel.view(n, 1, -1, 1),
                   groups=n)
    return out.transpose(0, 1)


def augment(x: torch.Tensor, gen: torch.Generator, views: Views = ROTATION_ONLY) -> torch.Tensor:
    """One random view per 2D image: a small rotation, then `views`' blur and fresh noise inside
    the head (see `Views`; the module docstring says why nothing else). Background stays -1."""
    n = x.shape[0]

    def u(*shape: int) -> torch.Tensor:  # uniform in [-1, 1]
        return torch.rand(shape, generator=gen) * 2 - 1

    angle = u(n) * ROTATION
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    theta = torch.cat([rotation, torch.zeros(n, 2, 1)], dim=2)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    # Sampling x + 1 with zero padding pads with -1, the background.
    out = F.grid_sample(x + 1, grid, padding_mode="zeros", align_corners=False) - 1
    if not (views.noise or views.blur):
        return out
    inside = brain_mask(out)
    if views.blur:
        sigma = (u(n) + 1) / 2 * views.blur * x.shape[-1] / 64
        out = torch.where(inside, _blurred(out, sigma), out)
    if views.noise:
        sd = ((u(n) + 1) / 2 * views.noise).view(n, 1, 1, 1).to(x.device)
        fresh = torch.randn(x.shape, generator=gen).to(x.device) * sd
        out = torch.where(inside, (out + fresh).clamp(-1, 1), out)
    return out


class DomainFeatures:
    """The frozen encoder: images [N, 1, *spatial] in [-1, 1] -> float64 CPU [M, features], one
    row per image (2D) or per slice, a volume's slices together (3D, see `as_slices`)."""

    def __init__(self, encoder: ResNet, key: str, info: dict, dims: int,
                 views: Views = ROTATION_ONLY):
        self.encoder = encoder.eval().requires_grad_(False)
        self.key, self.info, self.dims, self.views = key, info, dims, views
        self.name = f"domain-resnet-v{DOMAIN_VERSION}-{views.name}:{key}"
        self.device = next(encoder.parameters()).device

    def to(self, device) -> DomainFeatures:
        self.device = torch.device(device)
        self.encoder.to(self.device)
        return self

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = [torch.empty(0, self.encoder.fc.out_features, dtype=torch.float64)]
        with exact_features(self.device):  # a metric: always fp32
            per_image = 1 if self.dims == 2 else 3 * SLICES_PER_PLANE
            for chunk in images.split(max(1, CHUNK // per_image)):
                x = as_slices(chunk.to(self.device, torch.float32))
                out.append(self.encoder(x).double().cpu())
        return torch.cat(out)


def train_encoder(data, s: Settings, device: torch.device, seed: int, progress: bool = True,
                  views: Views = ROTATION_ONLY) -> dict:
    """SimCLR: NT-Xent between two augmented views of each image of a batch of train T1 images."""
    with torch.random.fork_rng(devices=[]):  # the caller's random stream stays untouched
        torch.manual_seed(seed)
        encoder, head = _encoder(s), torch.nn.Sequential(
            torch.nn.Linear(s.domain_features, PROJECTION), torch.nn.ReLU(), torch.nn.Linear(PROJECTION, PROJECTION))
    encoder, head = encoder.to(device), head.to(device)
    opt = torch.optim.Adam([*encoder.parameters(), *head.parameters()], LR)
    loss_fn, gen = ContrastiveLoss(temperature=TEMPERATURE), seeded_generator(seed, 4)
    images = as_slices(data.train.t1)
    batch = min(s.domain_batch, len(images))  # distinct images: a repeat would be a false negative
    start, loss = time.perf_counter(), torch.tensor(float("nan"))
    for _ in tqdm(range(s.domain_steps), desc=f"domain encoder {data.spec.name} ({views.name})",
                  disable=not progress, leave=False):
        x = images[torch.randperm(len(images), generator=gen)[:batch]].to(device)
        pair = torch.cat([augment(x, gen, views), augment(x, gen, views)])
        z = head(encoder(pair))
        loss = loss_fn(z[:batch], z[batch:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    # Batch-norm statistics averaged over all train images: after few steps (smoke) the running
    # averages would still be near their initial values, and eval-mode features skewed. Balanced
    # chunks: a last chunk of one image would fail where a feature map is 1 pixel.
    with torch.no_grad():
        update_bn(images.tensor_split(math.ceil(len(images) / CHUNK)), encoder, device)
    state = {n: t.detach().cpu() for n, t in encoder.state_dict().items()}
    if bad := nonfinite(state):
        raise BenchError(f"domain encoder of {data.spec.name} diverged (non-finite {bad[0]}); check the "
                         f"task's training images for NaN/inf, else report it as a bug")
    digest = hashlib.sha256(b"".join(t.contiguous().numpy().tobytes() for t in state.values()))
    info = {"steps": s.domain_steps, "batch": batch, "seconds": round(time.perf_counter() - start, 2),
            "weights_sha256": digest.hexdigest()[:16],
            "final_loss": float(loss.detach()), "device": str(device), "precision": "fp32",
            "views": dataclasses.asdict(views)}
    return {"state": state, "info": info}


def get_domain_features(data, s: Settings, cache_dir: Path, device, precision: str, seed: int = 0,
                        progress: bool = True, views: Views = LEADING_VIEWS) -> DomainFeatures:
    """The task's frozen domain encoder trained on `views`: loaded from the cache, or trained once
    and cached. `precision` is the run's and does not change the encoder (see the module's
    docstring)."""
    key, device = domain_key(data, s, seed, views), torch.device(device)

    def load(blob: dict) -> DomainFeatures:
        encoder = _encoder(s)
        encoder.load_state_dict(blob["state"])
        return DomainFeatures(encoder, key, blob["info"], s.dims, views).to(device)

    return load_or_train(Path(cache_dir) / "domain" / f"{key}.pt", "domain encoder", load,
                         lambda: train_encoder(data, s, device, seed, progress, views))


def get_encoders(data, s: Settings, cache_dir: Path, device, views: list[Views],
                 progress: bool = True) -> dict[str, DomainFeatures]:
    """The further encoders some metrics have of their own (bench.metrics.registry.encoder_views),
    by their views' name."""
    return {v.name: get_domain_features(data, s, cache_dir, device, "fp32", progress=progress,
                                        views=v) for v in views}
