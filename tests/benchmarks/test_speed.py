"""Speed of the harness's hot paths at quick-profile sizes (pytest-benchmark; `make bench-speed`).

With the default `--benchmark-disable` each body runs once, untimed and at smoke-profile sizes
(the `profile` fixture), so `make test` checks that they work without their heavy loops: those
take most of an hour on a CPU that emulates bf16. `make bench-speed` ends with a summary
(conftest.py): the CPU's bf16 capabilities, the quick step's rate in each precision (emulated
ones marked), the matmul ceiling in the precision `auto` picks, each training step's FLOPs and
its share of that ceiling, and the harness's loop against a bare loop of the same networks, all
measured in the same run.
"""

import dataclasses
import os
from types import SimpleNamespace

import pytest
import torch

from bench.device import autocast, fast_layout, resolve_precision, synchronize
from bench.metrics.domain import DomainFeatures, _encoder, as_slices
from bench.metrics.fid import frechet_distance
from bench.nets import NoiseToImageGenerator, PatchDiscriminator, ResnetTrunk, init_weights
from bench.profiles import get_settings


def _gan_step(s, precision):
    G = init_weights(NoiseToImageGenerator(s.dims, s.image_size, s.z_dim, s.ngf, s.n_blocks,
                                           s.stem_channels, noise_input=s.noise_input,
                                           upsample=s.upsample))
    D = init_weights(PatchDiscriminator(s.dims, s.image_size, s.ndf))
    G, D = fast_layout(G, s.dims), fast_layout(D, s.dims)  # as the training loop does
    z = torch.randn(s.batch_size, s.z_dim)
    real = torch.rand(s.batch_size, 1, *[s.image_size] * s.dims) * 2 - 1
    dev = torch.device("cpu")

    def step():
        with autocast(dev, precision):
            loss = (torch.nn.functional.softplus(D(G(z).detach()).float()).mean()
                    + torch.nn.functional.softplus(-D(real).float()).mean()
                    + torch.nn.functional.softplus(-D(G(z)).float()).mean())
        loss.backward()

    step()  # oneDNN builds its kernels on the first call for each shape
    return step


# What `auto` trains in on this CPU: the loops below measure what a user's run computes.
AUTO = resolve_precision("auto", torch.device("cpu")).name


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_noise_to_image_step(benchmark, speed, profile, dims, precision):
    """One G and D step, forward and backward, in each precision: what emulated bf16 costs."""
    benchmark.pedantic(_gan_step(get_settings(profile, dims), precision), rounds=3, iterations=1)
    speed.record(f"step {dims}D {precision}", benchmark, 0)


def test_matmul_ceiling(benchmark, speed, profile):
    """A square matmul in the precision `auto` picks: "the ceiling" the loops are held to."""
    size = 2048 if profile == "quick" else 256
    dtype = torch.bfloat16 if AUTO == "bf16" else torch.float32
    a, b = (torch.randn(size, size, dtype=dtype) for _ in "ab")
    torch.mm(a, b)
    benchmark.pedantic(torch.mm, args=(a, b), rounds=10, iterations=1)
    speed.record("ceiling", benchmark, 2 * size ** 3)


class _NoEvaluation:
    """An evaluator that measures nothing: what remains of train_unit is its training loop."""

    n, identity = 1, "none"

    def __init__(self, s):
        self.shape = (1, *[s.image_size] * s.dims)

    def generate(self, G, z, precision):
        return torch.zeros(len(z), *self.shape)

    def track(self, samples, fakes, D, precision):
        return {"fid": None}


STEPS = 16  # one lazy-R1 step in every 16, as in training


def _loop_settings(profile: str, dims: int):
    s = get_settings(profile, dims)
    return dataclasses.replace(s, steps=STEPS, eval_every=10 ** 9)


def _data(s):
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(256, 1, *[s.image_size] * s.dims, generator=gen) * 2 - 1
    return SimpleNamespace(train=SimpleNamespace(t1=images))


@pytest.mark.parametrize("dims", [2, 3])
def test_harness_training_loop(benchmark, speed, profile, dims):
    """train_unit itself (batch sampling, augmentation, R1, EMA, divergence checks, progress),
    16 steps, evaluations stubbed out."""
    from bench.compute import gan_flops
    from bench.nets import build_networks
    from bench.train import train_unit
    s = _loop_settings(profile, dims)
    G, D = build_networks(s, 0)
    data, cpu = _data(s), torch.device("cpu")

    def loop():
        train_unit(G, D, data, s, 0, cpu, AUTO, _NoEvaluation(s), progress=False)

    loop()
    benchmark.pedantic(loop, rounds=5, iterations=1)
    speed.record(f"harness {dims}D", benchmark, gan_flops(s, STEPS))


def _bare_loop(s, compiled: bool, device: torch.device = torch.device("cpu"),
               steps: int = STEPS):
    """`steps` steps written plainly: the same networks, losses, R1 schedule, augmentation, Adam
    and EMA, without the harness around them. `compiled`: G and D through torch.compile for the
    losses; R1 stays eager, since compiled graphs have no double backward. On a GPU each call
    waits for the device before returning, so that it is timed whole."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from bench.augment import augment, check_policy
    from bench.nets import build_networks
    from bench.train import d_loss, g_loss, r1_loss
    G, D = build_networks(s, 0)
    G, D = fast_layout(G.to(device), s.dims), fast_layout(D.to(device), s.dims)
    precision = resolve_precision("auto", device).name
    Gc, Dc = (torch.compile(G), torch.compile(D)) if compiled else (G, D)
    images, ops = _data(s).train.t1.to(device), check_policy(s.augment)
    opt_g = torch.optim.Adam(G.parameters(), s.lr_g, betas=(s.beta1, s.beta2))
    opt_d = torch.optim.Adam(D.parameters(), s.lr_d, betas=(s.beta1, s.beta2))
    ema = AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(s.ema_decay), use_buffers=True)
    gen = torch.Generator().manual_seed(0)
    aug = lambda x: augment(x, ops, gen)  # noqa: E731

    def loop():
        for step in range(steps):
            real = images[torch.randint(len(images), (s.batch_size,), generator=gen).to(device)]
            z = torch.randn(s.batch_size, s.z_dim).to(device)
            loss = d_loss(Gc, Dc, z, real, device, precision, aug)
            if step % s.r1_every == 0:
                loss = loss + r1_loss(D, aug(real), s)
            opt_d.zero_grad(set_to_none=True)
            loss.backward()
            opt_d.step()
            D.requires_grad_(False)
            loss = g_loss(Gc, Dc, torch.randn(s.batch_size, s.z_dim).to(device), device,
                          precision, aug, s.mode_seeking)
            D.requires_grad_(True)
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
            ema.update_parameters(G)
        synchronize(device)

    loop()  # oneDNN's kernels (and, compiled, the graphs) are built on the first steps
    return loop


@pytest.mark.parametrize("dims", [2, 3])
def test_bare_training_loop(benchmark, speed, profile, dims):
    from bench.compute import gan_flops
    s = _loop_settings(profile, dims)
    benchmark.pedantic(_bare_loop(s, compiled=False), rounds=5, iterations=1)
    speed.record(f"bare {dims}D", benchmark, gan_flops(s, STEPS))


@pytest.mark.skipif(not os.environ.get("BENCH_COMPILE"),
                    reason="compiling takes minutes on a CPU: set BENCH_COMPILE=1")
@pytest.mark.parametrize("dims", [2, pytest.param(3, marks=pytest.mark.xfail(
    reason="torch 2.13's inductor fails to lower the 3D networks on CPU (LoweringException: "
           "Exponent must be non-negative)"))])
def test_compiled_training_loop(benchmark, speed, profile, dims):
    """The bare loop with G and D compiled: whether torch.compile pays on this machine."""
    from bench.compute import gan_flops
    s = _loop_settings(profile, dims)
    benchmark.pedantic(_bare_loop(s, compiled=True), rounds=5, iterations=1)
    speed.record(f"compiled {dims}D", benchmark, gan_flops(s, STEPS))


@pytest.mark.parametrize("dims", [2, 3])
def test_cyclegan_generator_pass(benchmark, profile, dims):
    s = get_settings(profile, dims)
    trunk = init_weights(ResnetTrunk(dims, s.ngf, s.n_blocks, upsample=s.upsample))
    trunk = fast_layout(trunk, dims)
    x = torch.rand(s.pretext_batch, 1, *[s.image_size] * dims)

    def passes():
        with autocast(torch.device("cpu"), AUTO):
            trunk(trunk(x)).float().mean().backward()

    passes()
    benchmark.pedantic(passes, rounds=3, iterations=1)


@pytest.mark.parametrize("dims", [2, 3])
def test_domain_features(benchmark, profile, dims):
    s = get_settings(profile, dims)
    features = DomainFeatures(_encoder(s), "untrained", {}, dims)
    images = torch.rand(s.fid_samples, 1, *[s.image_size] * dims) * 2 - 1
    feats = benchmark.pedantic(features, args=(images,), rounds=3, iterations=1)
    assert feats.shape == (len(as_slices(images)), s.domain_features)


def test_inception_features_32_images(benchmark):
    """32 images of 64^2 through InceptionV3 at 299^2: a quick 2D unit feeds it 240."""
    from bench.metrics.inception import load_inception
    from bench.config import default_cache
    extractor, reason = load_inception(default_cache(), "cpu")
    if extractor is None:
        pytest.skip(reason)
    images = torch.rand(32, 1, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    extractor(images[:16])  # TorchScript optimises on its first calls
    feats = benchmark.pedantic(extractor, args=(images,), rounds=3, iterations=1)
    assert feats.shape == (32, 2048)


def test_frechet_distance_inception_width(benchmark):
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(480, 2048, generator=gen, dtype=torch.float64) for _ in "ab")
    assert benchmark(frechet_distance, a, b) > 0


GPU_STEPS = 50


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("dims", [2, 3])
def test_standard_training_steps_on_cuda(benchmark, speed, dims, compiled):
    """50 steps of the `standard` profile's loop on the GPU, eager and through torch.compile."""
    from bench.compute import gan_flops
    s = dataclasses.replace(get_settings("standard", dims), steps=GPU_STEPS, eval_every=10 ** 9)
    loop = _bare_loop(s, compiled, torch.device("cuda"), GPU_STEPS)
    benchmark.pedantic(loop, rounds=3, iterations=1)
    name = torch.cuda.get_device_name()
    speed.record(f"standard {dims}D {'compiled' if compiled else 'eager'} on {name}", benchmark,
                 gan_flops(s, GPU_STEPS))
