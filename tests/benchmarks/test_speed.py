"""Speed of the harness's hot paths at quick-profile sizes (pytest-benchmark; `make bench-speed`).

With the default `--benchmark-disable` each body runs once as a plain test, so `make test` still
checks that they work.
"""

import pytest
import torch

from bench.device import autocast, fast_layout
from bench.metrics.domain import DomainFeatures, _encoder, as_slices
from bench.metrics.fid import frechet_distance
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
def test_domain_features_quick(benchmark, dims):
    s = get_settings("quick", dims)
    features = DomainFeatures(_encoder(s), "untrained", {}, dims)
    images = torch.rand(s.fid_samples, 1, *[s.image_size] * dims) * 2 - 1
    feats = benchmark.pedantic(features, args=(images,), rounds=3, iterations=1)
    assert feats.shape == (len(as_slices(images)), s.domain_features)


def test_inception_features_32_images(benchmark):
    """32 images of 64^2 through InceptionV3 at 299^2: a quick 2D unit feeds it 240."""
    from bench.metrics.inception import load_inception
    from bench.run import default_cache
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
