import pytest
import torch

import dataclasses

from bench.nets import (NOISE_INPUTS, UPSAMPLINGS, NoiseStem, NoiseToImageGenerator,
                        PatchDiscriminator, ResnetTrunk, build_networks, init_weights, patchgan_depth,
                        patchgan_receptive_field)
from bench.profiles import get_settings


@pytest.mark.parametrize("dims,size", [(2, 32), (2, 64), (3, 16), (3, 32)])
def test_generator_and_discriminator_shapes(dims, size):
    G = NoiseToImageGenerator(dims, size, z_dim=16, ngf=4, n_blocks=2, stem_channels=8,
                              noise_input="stem", upsample="resize")
    D = PatchDiscriminator(dims, size, ndf=8)
    x = G(torch.randn(3, 16))
    assert x.shape == (3, 1, *[size] * dims)
    assert x.abs().max() <= 1
    logits = D(x)
    assert logits.shape[:2] == (3, 1) and logits.dim() == dims + 2


def test_trunk_maps_images_to_images_and_has_named_parts():
    trunk = ResnetTrunk(3, ngf=4, n_blocks=2, upsample="resize")
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
        NoiseToImageGenerator(2, 36, 16, 4, 1, 8, noise_input="stem", upsample="resize")


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


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("noise_input", NOISE_INPUTS)
def test_every_noise_input_starts_as_the_stem_design(dims, noise_input):
    """The fresh noise paths start at zero: G (and D) for a seed are the stem design's, so a
    transfer strategy starts exactly at the function it copied; then z reaches the new layers."""
    s = dataclasses.replace(get_settings("smoke", dims), noise_input=noise_input)
    G, D = build_networks(s, 3)
    G0, D0 = build_networks(dataclasses.replace(s, noise_input="stem"), 3)
    z = torch.randn(4, s.z_dim)
    out = G.eval()(z)
    assert out.shape == (4, 1, *[s.image_size] * dims)
    assert torch.allclose(out, G0.eval()(z), atol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(D.state_dict().values(), D0.state_dict().values()))
    G.train()(z).square().mean().backward()
    fresh = [m for m in (G.modulation, G.bottleneck, G.pixel_noise) if m is not None]
    assert len(fresh) == len(noise_input.split("+")) - (noise_input == "stem")
    for module in fresh:
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


@pytest.mark.parametrize("noise_input", NOISE_INPUTS)
def test_the_trunk_loads_one_to_one_from_a_cyclegan_trunk(noise_input):
    from strategies import copy_trunk
    s = dataclasses.replace(get_settings("smoke", 2), noise_input=noise_input)
    G, _ = build_networks(s, 0)
    torch.manual_seed(5)
    # as the pretext builds it
    source = init_weights(ResnetTrunk(2, s.ngf, s.n_blocks, upsample=s.upsample)).state_dict()
    counts = copy_trunk(G, source)
    assert set(G.trunk.state_dict()) == set(source)
    assert all(torch.equal(v, source[k]) for k, v in G.trunk.state_dict().items())
    assert sum(counts.values()) == sum(p.numel() for p in G.trunk.parameters())


def test_modulation_carries_z_when_the_stem_is_silent():
    s = dataclasses.replace(get_settings("smoke", 2), noise_input="adain")
    G, _ = build_networks(s, 0)
    with torch.no_grad():
        G.stem.fc.weight.zero_()  # the stem draws the same image for every z
        z = torch.randn(6, s.z_dim)
        assert (G(z) - G(z[:1])).abs().max() < 1e-6
        G.modulation.affine.weight.normal_(0, 0.1)
        assert (G(z) - G(z[:1])).abs().max() > 1e-3


@pytest.mark.parametrize("dims", [2, 3])
def test_pixel_noise_is_fine_texture_fixed_by_z(dims):
    """Each norm's noise: unit variance, nearly independent between neighbouring pixels and
    between norms, and the same for the same z, so that G stays a function of z."""
    s = dataclasses.replace(get_settings("smoke", dims), noise_input="pixel")
    G, _ = build_networks(s, 0)
    z = torch.randn(8, s.z_dim)
    ones = [torch.ones(1, c, *[s.image_size // k] * dims)
            for c, k in zip(G.trunk.norm_channels(), G.trunk.norm_strides())]
    with torch.no_grad():
        for p in G.pixel_noise.scales:
            p.fill_(1.0)
        first = [hook(x) - x for hook, x in zip(G.pixel_noise(z), ones)]
        again = [hook(x) - x for hook, x in zip(G.pixel_noise(z), ones)]
        assert all(torch.equal(a, b) for a, b in zip(first, again))
        full = first[0][:, 0]  # the encoder's first norm: full resolution
        assert 0.9 < float(full.std()) < 1.1
        pairs = torch.stack([full[..., :-1].flatten(), full[..., 1:].flatten()])
        assert abs(float(torch.corrcoef(pairs)[0, 1])) < 0.1
        other = first[-1][:, 0]  # the decoder's last norm, at the same resolution
        assert abs(float(torch.corrcoef(torch.stack([full.flatten(), other.flatten()]))[0, 1])) < 0.1
        out = G(z)
        assert torch.equal(out, G(z)) and (out - G(torch.randn(8, s.z_dim))).abs().max() > 1e-3


def test_unknown_noise_input_is_refused():
    with pytest.raises(ValueError, match="noise_input"):
        NoiseToImageGenerator(2, 32, 16, 4, 1, 8, noise_input="film", upsample="resize")


@pytest.mark.parametrize("dims", [2, 3])
def test_resize_upsampling_starts_free_of_the_checkerboard(dims):
    from bench.metrics.defects import checkerboard_energy
    energy = {}
    for upsample in UPSAMPLINGS:
        s = dataclasses.replace(get_settings("smoke", dims), upsample=upsample)
        values = []
        for seed in range(3):
            G, _ = build_networks(s, seed)
            with torch.no_grad():
                values.append(checkerboard_energy(G(torch.randn(4, s.z_dim))).mean())
        energy[upsample] = torch.stack(values)
    # Real images hold 0.006-0.024 of their power at period 2 (docs/evaluation.md).
    assert energy["resize"].max() < 0.05
    assert energy["transposed"].min() > 2 * energy["resize"].max()


@pytest.mark.parametrize("upsample", UPSAMPLINGS)
def test_the_trunk_loads_one_to_one_from_the_pretext_built_with_the_same_upsampling(upsample):
    from strategies.inflate import inflate_state
    from bench.pretext import _trunk
    from strategies import copy_trunk
    s = dataclasses.replace(get_settings("smoke", 2), upsample=upsample)
    G, _ = build_networks(s, 0)
    source = _trunk(s, torch.device("cpu")).state_dict()
    assert sum(copy_trunk(G, source).values()) == sum(p.numel() for p in G.trunk.parameters())
    assert all(torch.equal(v, source[k].to(v.dtype)) for k, v in G.trunk.state_dict().items())
    # the 3D task's 2D CycleGAN inflates into the 3D trunk of the same upsampling
    s3 = dataclasses.replace(get_settings("smoke", 3), upsample=upsample)
    trunk3d = ResnetTrunk(3, s.ngf, s.n_blocks, upsample=upsample)
    trunk3d.load_state_dict(inflate_state(trunk3d, source))
    assert trunk3d(torch.rand(1, 1, *[s3.image_size] * 3)).shape[2:] == (s3.image_size,) * 3


def test_unknown_upsampling_is_refused():
    with pytest.raises(ValueError, match="upsample"):
        ResnetTrunk(2, 4, 1, upsample="pixelshuffle")
