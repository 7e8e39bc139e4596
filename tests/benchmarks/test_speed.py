"""Speed of the harness's hot paths at quick-profile sizes (pytest-benchmark; `make bench-speed`).

With the default `--benchmark-disable` each body runs once as a plain test, so `make test` still
checks that they work.
"""

import pytest
import torch

from bench.device import autocast, fast_layout
from bench.fid import STAGES, RandomConvFeatures
from bench.nets import NoiseToImageGenerator, PatchDiscriminator, ResnetTrunk, init_weights
from bench.profiles import get_settings


def _gan_step(s, precision):
    G = init_weights(NoiseToImageGenerator(s.dims, s.image_size, s.z_dim, s.ngf, s.n_blocks,
                                           s.stem_channels))
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


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_noise_to_image_step_quick(benchmark, dims, precision):
    benchmark.pedantic(_gan_step(get_settings("quick", dims), precision), rounds=3, iterations=1)


@pytest.mark.parametrize("dims", [2, 3])
def test_cyclegan_generator_pass_quick(benchmark, dims):
    s = get_settings("quick", dims)
    trunk = fast_layout(init_weights(ResnetTrunk(dims, s.ngf, s.n_blocks)), dims)
    x = torch.rand(s.pretext_batch, 1, *[s.image_size] * dims)

    def passes():
        with autocast(torch.device("cpu"), "bf16"):
            trunk(trunk(x)).float().mean().backward()

    passes()
    benchmark.pedantic(passes, rounds=3, iterations=1)


@pytest.mark.parametrize("dims", [2, 3])
def test_fid_features_quick(benchmark, dims):
    s = get_settings("quick", dims)
    net = RandomConvFeatures(dims)
    images = torch.rand(s.fid_samples, 1, *[s.image_size] * dims) * 2 - 1
    feats = benchmark.pedantic(net, args=(images,), rounds=3, iterations=1)
    assert feats.shape == (s.fid_samples, sum(STAGES[dims]))
