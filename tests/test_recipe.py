"""The training recipes' pieces: D's minibatch-std head, differentiable augmentation, R1's
reduction, and how recipes resolve into settings."""

import dataclasses

import pytest
import torch

from bench.augment import augment, check_policy
from bench.nets import MinibatchStd, PatchDiscriminator, build_networks
from bench.profiles import get_settings, list_recipes
from bench.train import d_score, g_loss, mode_seeking, r1_loss
from ground.errors import BenchError


@pytest.mark.parametrize("dims,size", [(2, 32), (3, 16)])
def test_minibatch_std_adds_one_channel_equal_within_a_group(dims, size):
    x = torch.randn(6, 5, *[size] * dims)
    out = MinibatchStd(4)(x)  # 4 does not divide 6: groups of 3
    assert out.shape == (6, 6, *[size] * dims)
    assert torch.equal(out[:, :5], x)
    std = out[:, 5].flatten(1)
    assert (std == std[:, :1]).all()  # constant over space
    # Samples m and m + 2 share a group (3 groups of 2... of size 3: {0,2,4}, {1,3,5}).
    assert std[0, 0] == std[2, 0] == std[4, 0] and std[1, 0] == std[3, 0]
    assert std[0, 0] != std[1, 0]
    copies = x[:1].expand(6, *x.shape[1:])
    assert MinibatchStd(3)(copies)[:, 5].abs().max() < 1e-3  # identical samples: no spread


@pytest.mark.parametrize("dims,size", [(2, 64), (3, 32)])
def test_minibatch_std_lives_in_a_head_that_is_never_transferred(dims, size):
    plain, stabilized = (PatchDiscriminator(dims, size, 8, mbstd_group=g) for g in (0, 4))
    body = {k: v.shape for k, v in plain.state_dict().items() if k.startswith("model.")}
    assert body == {k: v.shape for k, v in stabilized.state_dict().items()
                    if k.startswith("model.")}
    assert all(k.startswith(("model.", "head")) for k in stabilized.state_dict())
    assert not any(isinstance(m, MinibatchStd) for m in stabilized.model.modules())
    x = torch.randn(4, 1, *[size] * dims)
    assert stabilized(x).shape == plain(x).shape


def test_the_cyclegan_discriminator_body_transfers_into_the_stabilized_d():
    from strategies import copy_into
    source = PatchDiscriminator(2, 64, 8).state_dict()
    s = get_settings("smoke", 2, "stabilized")
    _, D = build_networks(dataclasses.replace(s, image_size=64, ndf=8), 0)
    assert copy_into(D, source, "model") == sum(p.numel() for p in D.model.parameters())
    assert torch.equal(D.model[0].weight, source["model.0.weight"])


@pytest.mark.parametrize("dims,size", [(2, 32), (3, 16)])
def test_augmentation_is_the_same_draw_for_the_same_generator_and_differentiable(dims, size):
    ops = check_policy("translation,cutout")
    x = torch.rand(4, 1, *[size] * dims, requires_grad=True)
    a = augment(x, ops, torch.Generator().manual_seed(1))
    b = augment(x, ops, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape
    assert not torch.equal(a, augment(x, ops, torch.Generator().manual_seed(2)))
    # Translation and cutout only move or erase voxels to the background.
    assert set(a.detach().unique().tolist()) - set(x.detach().flatten().tolist()) <= {-1.0}
    assert (a == -1).any()
    a.sum().backward()
    assert x.grad is not None and 0 < x.grad.sum() < x.numel()


def test_real_and_fake_images_see_one_transform_distribution():
    # The same draws applied to two batches move them alike: what D learns from an artefact of
    # the augmentation is the same for real and generated images.
    ops = check_policy("translation")
    size = 32
    real, fake = -torch.ones(2, 1, size, size), -torch.ones(2, 1, size, size)
    real[:, :, 10:20, 10:20], fake[:, :, 12:22, 8:18] = 1, 1
    a = augment(real, ops, torch.Generator().manual_seed(0))
    b = augment(fake, ops, torch.Generator().manual_seed(0))
    assert torch.equal(torch.roll(a, (2, -2), (2, 3)), b)


def _unerased_share(images: torch.Tensor, p: float, seed: int) -> float:
    """Share of the views D gets of `images` (cutout, probability p) that hold no erased voxel."""
    seen = augment(images, check_policy("cutout"), torch.Generator().manual_seed(seed), p)
    return float((seen != -1).flatten(1).all(1).float().mean())


def test_cutout_below_probability_one_tells_a_generator_that_draws_boxes():
    """Synthetic case: real images are all brain (no background), a leaking generator's hold a
    box of background. At p = 1 D's views of both hold erased voxels every time, so no D can tell
    them apart by their boxes; at p = 0.5 half the real views are unerased and none of the
    leaking generator's are."""
    real = torch.ones(400, 1, 16, 16)
    leaking = real.clone()
    leaking[:, :, 4:12, 4:12] = -1
    assert _unerased_share(real, 1.0, 0) == _unerased_share(leaking, 1.0, 0) == 0
    assert _unerased_share(real, 0.5, 0) == pytest.approx(0.5, abs=0.08)
    assert _unerased_share(leaking, 0.5, 0) == 0
    # Applied or not, one draw decides per sample: the same seed draws the same views.
    assert torch.equal(augment(real, ("cutout",), torch.Generator().manual_seed(3), 0.5),
                       augment(real, ("cutout",), torch.Generator().manual_seed(3), 0.5))


def test_augmentation_probability_outside_0_1_is_a_one_line_error():
    from bench.augment import check_probability
    assert check_probability(0.5) == 0.5
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(BenchError, match="not a probability in"):
            check_probability(bad)


def test_unknown_augmentation_is_a_one_line_error():
    assert check_policy("none") == () and check_policy("") == ()
    with pytest.raises(BenchError, match="unknown augmentation 'flip'"):
        check_policy("translation,flip")


def test_r1_per_patch_is_the_summed_penalty_over_patches_squared():
    s = get_settings("smoke", 2, "plain")
    D = PatchDiscriminator(2, 32, 8)
    patches = D(torch.zeros(1, 1, 32, 32)).numel()
    assert patches > 1
    real = torch.randn(3, 1, 32, 32)
    summed = r1_loss(D, real, s)
    meaned = r1_loss(D, real, dataclasses.replace(s, r1_reduction="mean"))
    assert summed.item() == pytest.approx(meaned.item() * patches ** 2, rel=1e-4)
    assert d_score(D, real, dataclasses.replace(s, r1_reduction="mean")).item() == pytest.approx(
        D(real).flatten(1).mean(1).sum().item(), rel=1e-5)


def test_mode_seeking_is_large_when_the_images_ignore_the_noise():
    z = torch.randn(8, 4)
    varied = torch.tanh(z[:, :1, None, None].expand(8, 1, 6, 6))
    same = varied[:1].expand(8, 1, 6, 6) + 1e-3 * torch.randn(8, 1, 6, 6)
    assert mode_seeking(same, z) > 100 * mode_seeking(varied, z)
    # Halves are the pairs: with image distance d per unit noise distance it is 1 / d.
    a, b = torch.zeros(2, 1, 2, 2), torch.full((2, 1, 2, 2), 0.5)
    za, zb = torch.zeros(2, 3), torch.ones(2, 3)
    assert mode_seeking(torch.cat([a, b]), torch.cat([za, zb])).item() == pytest.approx(2, rel=1e-4)
    odd = mode_seeking(torch.cat([a, b, a[:1]]), torch.cat([za, zb, za[:1]]))
    assert odd.item() == pytest.approx(2, rel=1e-4)  # the unpaired last image is left out
    assert mode_seeking(a[:1], za[:1]).item() == 0


def test_mode_seeking_weight_adds_to_the_generator_loss_and_pushes_images_apart():
    s = get_settings("smoke", 2, "stabilized")
    G, D = build_networks(s, 0)
    z = torch.randn(4, s.z_dim)
    plain = g_loss(G, D, z, torch.device("cpu"), "fp32")
    seeking = g_loss(G, D, z, torch.device("cpu"), "fp32", seeking=0.5)
    assert seeking.item() == pytest.approx(plain.item() + 0.5 * mode_seeking(G(z), z).item(),
                                           rel=1e-4)
    G.zero_grad()
    mode_seeking(G(z), z).backward()
    assert G.stem.fc.weight.grad.abs().sum() > 0  # it reaches the noise pathway


def test_recipes_resolve_over_profiles_and_unknown_ones_are_refused():
    assert set(list_recipes()) == {"plain", "stabilized"}
    plain, stab = get_settings("quick", 2, "plain"), get_settings("quick", 2)
    assert stab.recipe == "stabilized" and plain.recipe == "plain"
    assert (plain.mbstd_group, plain.augment, plain.r1_reduction) == (0, "none", "sum")
    assert stab.mbstd_group > 0 and check_policy(stab.augment) and stab.r1_reduction == "mean"
    # Everything a recipe does not set is the profile's.
    assert (plain.image_size, plain.steps, plain.ngf) == (stab.image_size, stab.steps, stab.ngf)
    with pytest.raises(BenchError, match="unknown recipe 'fancy'"):
        get_settings("quick", 2, "fancy")
