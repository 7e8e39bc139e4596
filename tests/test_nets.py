import pytest
import torch

from bench.nets import (NoiseStem, NoiseToImageGenerator, PatchDiscriminator, ResnetTrunk,
                        init_weights, patchgan_depth, patchgan_receptive_field)


@pytest.mark.parametrize("dims,size", [(2, 32), (2, 64), (3, 16), (3, 32)])
def test_generator_and_discriminator_shapes(dims, size):
    G = NoiseToImageGenerator(dims, size, z_dim=16, ngf=4, n_blocks=2, stem_channels=8)
    D = PatchDiscriminator(dims, size, ndf=8)
    x = G(torch.randn(3, 16))
    assert x.shape == (3, 1, *[size] * dims)
    assert x.abs().max() <= 1
    logits = D(x)
    assert logits.shape[:2] == (3, 1) and logits.dim() == dims + 2


def test_trunk_maps_images_to_images_and_has_named_parts():
    trunk = ResnetTrunk(3, ngf=4, n_blocks=2)
    assert [n for n, _ in trunk.named_children()] == ["encoder", "residual", "decoder"]
    assert trunk(torch.rand(2, 1, 16, 16, 16)).shape == (2, 1, 16, 16, 16)


def test_patchgan_receptive_field_covers_the_image():
    assert patchgan_receptive_field(3) == 70  # CycleGAN's 70x70 PatchGAN
    for size in (16, 32, 64, 128, 256):
        n = patchgan_depth(size)
        assert patchgan_receptive_field(n) >= size > patchgan_receptive_field(n - 1) or n == 1


def test_init_is_normal_002_with_zero_bias():
    torch.manual_seed(0)
    D = init_weights(PatchDiscriminator(2, 64, ndf=32))
    w = torch.cat([m.weight.flatten() for m in D.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(w.std().item() - 0.02) < 0.002
    assert all((m.bias == 0).all() for m in D.modules() if isinstance(m, torch.nn.Conv2d))


@pytest.mark.parametrize("dims,size", [(2, 32), (3, 16)])
def test_the_stem_normalizes_each_sample_alone_and_keeps_the_noise(dims, size):
    # Instance norm, not batch norm: an image never depends on the others of its batch, so
    # evaluation samples are the same in any batch size; and what is left still varies with z.
    torch.manual_seed(0)
    stem = init_weights(NoiseStem(dims, size, 16, 8))
    z = torch.randn(4, 16)
    out = stem(z)
    assert torch.allclose(stem(z[:1]), out[:1], atol=1e-6)
    assert (out[0] - out[1]).abs().mean() > 0.2 * out.abs().mean()


def test_stem_rejects_sizes_it_cannot_build():
    with pytest.raises(ValueError, match="multiple of 8"):
        NoiseToImageGenerator(2, 36, 16, 4, 1, 8)


def test_fid_is_zero_for_identical_sets_and_missing_for_non_finite_features():
    from bench.metrics.fid import frechet_distance
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(64, 8, generator=gen, dtype=torch.float64)
    noise = torch.randn(64, 8, generator=gen, dtype=torch.float64) * 3 + 1
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(a, noise) > 0
    bad = a.clone()
    bad[0, 0] = float("nan")
    assert frechet_distance(bad, a) is None
