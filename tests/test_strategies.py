import pytest
import torch

import strategies
from bench.nets import UPSAMPLINGS, build_networks
from bench.plugins import load_plugin
from ground.errors import BenchError

# strategy -> (pretext, source state dict, trunk parts it must transfer)
EXPECTED = {
    "scratch": (None, None, ()),
    "cyclegan-t2t1": ("cyclegan", "G_t2t1", ("encoder", "residual", "decoder")),
    "cyclegan-partial": ("cyclegan", "G_t2t1", ("residual", "decoder")),
    "pretrained-encoder": ("autoencoder", "trunk", ("encoder",)),
    "autoencoder-trunk": ("autoencoder", "trunk", ("encoder", "residual", "decoder")),
    "cyclegan-t1t2": ("cyclegan", "G_t1t2", ("encoder", "residual", "decoder")),
}
CONTROLS = ("autoencoder-trunk", "cyclegan-t1t2", "cyclegan-shuffled", "cyclegan-with-d",
            "cyclegan-2d-inflated")


def test_registry_lists_the_builtins():
    assert set(EXPECTED) | set(CONTROLS) <= set(strategies.list_strategies())
    for name in [*EXPECTED, *CONTROLS]:
        assert strategies.strategy_origin(name) == "built-in"
        assert strategies.get_strategy(name).description


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_transferred_tensors_equal_their_source_and_others_do_not(name, smoke_2d, smoke_pretexts):
    _, s, _ = smoke_2d
    pretext, key, parts = EXPECTED[name]
    G, D = build_networks(s, seed=5)
    fresh_G, fresh_D = build_networks(s, seed=5)
    strategy = strategies.get_strategy(name)
    assert strategy.needs == ((pretext,) if pretext else ())
    report = strategy.initialize(G, D, {n: smoke_pretexts[n] for n in strategy.needs})

    source = smoke_pretexts[pretext].state[key] if pretext else {}
    for tensor_name, value in G.trunk.state_dict().items():
        part = tensor_name.split(".")[0]
        if part in parts:
            assert torch.equal(value, source[tensor_name]), tensor_name
        else:
            assert torch.equal(value, fresh_G.trunk.state_dict()[tensor_name]), tensor_name
            if source and value.numel() > 1:
                assert not torch.equal(value, source[tensor_name]), tensor_name
    for a, b in zip(G.stem.state_dict().values(), fresh_G.stem.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(D.state_dict().values(), fresh_D.state_dict().values()):
        assert torch.equal(a, b)

    for part in ("encoder", "residual", "decoder"):
        expected = sum(p.numel() for p in getattr(G.trunk, part).parameters()) if part in parts else 0
        assert report[part] == expected, part
    assert report["stem"] == 0 and report["discriminator"] == 0
    assert report["total"] == sum(report[p] for p in ("encoder", "residual", "decoder"))


def test_unknown_strategy_is_a_one_line_error():
    with pytest.raises(BenchError, match="unknown strategy 'nope'; known: .*scratch"):
        strategies.get_strategy("nope")


def test_copy_into_refuses_mismatched_shapes(smoke_2d, smoke_pretexts):
    from bench.nets import ResnetTrunk
    bigger = ResnetTrunk(2, ngf=smoke_2d[1].ngf * 2, n_blocks=smoke_2d[1].n_blocks,
                         upsample=smoke_2d[1].upsample)
    with pytest.raises(BenchError, match="shape mismatch"):
        strategies.copy_into(bigger, smoke_pretexts["cyclegan"].state["G_t2t1"], "encoder")


def test_cli_lists_strategies_with_needs_and_origin(capsys):
    from bench.cli import main
    assert main(["list", "strategies"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "needs=cyclegan" in lines["cyclegan-t2t1"] and "origin=built-in" in lines["scratch"]
    assert "needs=autoencoder" in lines["pretrained-encoder"]


def test_cli_lists_tasks(capsys):
    from bench.cli import main
    assert main(["list", "tasks"]) == 0
    out = capsys.readouterr().out
    assert "phantom-2d" in out and "phantom-3d" in out and "mni-phantom" in out


def test_cyclegan_with_d_transfers_trunk_and_discriminator_body(smoke_2d, smoke_pretexts):
    G, D = build_networks(smoke_2d[1], seed=1)
    report = strategies.get_strategy("cyclegan-with-d").initialize(G, D, smoke_pretexts)
    cyclegan = smoke_pretexts["cyclegan"].state
    for name, value in D.model.state_dict().items():
        assert torch.equal(value, cyclegan["D_t1"][f"model.{name}"]), name
    for name, value in G.trunk.state_dict().items():
        assert torch.equal(value, cyclegan["G_t2t1"][name]), name
    assert report["discriminator"] == sum(p.numel() for p in D.model.parameters())
    assert not any(torch.equal(p, q) for p in D.head.parameters()
                   for q in cyclegan["D_t1"].values() if p.shape == q.shape)


def test_the_example_plugin_transfers_only_the_discriminator_body(smoke_2d, smoke_pretexts):
    from pathlib import Path
    example = Path(__file__).resolve().parents[1] / "examples" / "cyclegan_d_only.py"
    assert load_plugin(str(example)) == ["cyclegan-d-only"]
    G, D = build_networks(smoke_2d[1], seed=1)
    fresh_G, _ = build_networks(smoke_2d[1], seed=1)
    report = strategies.get_strategy("cyclegan-d-only").initialize(G, D, smoke_pretexts)
    for name, value in D.model.state_dict().items():
        assert torch.equal(value, smoke_pretexts["cyclegan"].state["D_t1"][f"model.{name}"]), name
    for a, b in zip(G.state_dict().values(), fresh_G.state_dict().values()):
        assert torch.equal(a, b)
    assert report["total"] == report["discriminator"] == sum(p.numel() for p in D.model.parameters())


def test_shuffled_trunk_holds_the_same_values_in_another_order(smoke_2d, smoke_pretexts):
    G, D = build_networks(smoke_2d[1], seed=2)
    report = strategies.get_strategy("cyclegan-shuffled").initialize(G, D, smoke_pretexts)
    source = smoke_pretexts["cyclegan"].state["G_t2t1"]
    moved = 0
    for name, value in G.trunk.state_dict().items():
        assert torch.equal(value.flatten().sort().values, source[name].flatten().sort().values), name
        moved += not torch.equal(value, source[name])
        assert value.shape == source[name].shape
    # Every tensor of more than a few distinct values comes out in another order.
    several = sum(source[n].unique().numel() > 2 for n in G.trunk.state_dict())
    assert moved == several > 0
    assert report["total"] == sum(p.numel() for p in G.trunk.parameters())
    again, _ = build_networks(smoke_2d[1], seed=3)
    strategies.get_strategy("cyclegan-shuffled").initialize(again, D, smoke_pretexts)
    for a, b in zip(G.trunk.state_dict().values(), again.trunk.state_dict().values()):
        assert torch.equal(a, b)  # seeded by the pretext: the same permutation for its units


@pytest.mark.parametrize("upsample", UPSAMPLINGS)
def test_inflated_trunk_on_a_depth_constant_volume_equals_the_2d_trunk_on_every_slice(upsample):
    from strategies.inflate import inflate_state
    from bench.nets import ResnetTrunk
    torch.manual_seed(0)
    flat = ResnetTrunk(2, ngf=4, n_blocks=1, upsample=upsample)
    deep = ResnetTrunk(3, ngf=4, n_blocks=1, upsample=upsample)
    with torch.no_grad():  # weights far from the harness's N(0, 0.02), biases too
        for p in flat.parameters():
            p.normal_(0.0, 0.2)
    deep.load_state_dict(inflate_state(deep, flat.state_dict()))
    images = torch.randn(2, 1, 16, 16)
    volume = images[:, :, None].expand(2, 1, 16, 16, 16).contiguous()  # constant along axial
    with torch.no_grad():
        expected, got = flat(images), deep(volume)
    assert expected.std() > 0.1
    for k in range(16):
        torch.testing.assert_close(got[:, :, k], expected, atol=1e-4, rtol=0)


def test_inflated_strategy_starts_3d_tasks_from_the_2d_pretext_of_their_slices(smoke_3d, cache_dir):
    from bench.pretext import pretext_flops, pretext_step_flops
    from strategies.inflate import inflate_state
    from bench.pretext import PretextContext, get_pretext
    spec, s, data = smoke_3d
    strategy = strategies.get_strategy("cyclegan-2d-inflated")
    assert strategy.needs == ("cyclegan-2d",) and strategy.dims == (3,)
    assert strategies.applies("cyclegan-2d-inflated", 3)
    assert not strategies.applies("cyclegan-2d-inflated", 2)
    ctx = PretextContext(data, s, 0, torch.device("cpu"), "fp32", progress=False)
    artifact = get_pretext("cyclegan-2d", ctx, cache_dir)
    flat = artifact.state["G_t2t1"]
    assert flat["encoder.0.weight"].dim() == 4  # a 2D network, of the 3D profile's width
    assert flat["encoder.0.weight"].shape[0] == s.ngf
    G, D = build_networks(s, seed=0)
    report = strategy.initialize(G, D, {"cyclegan-2d": artifact})
    inflated = inflate_state(G.trunk, flat)
    for name, value in G.trunk.state_dict().items():
        assert torch.equal(value, inflated[name]), name
    assert report["total"] == sum(p.numel() for p in G.trunk.parameters())
    # Its compute is a 2D CycleGAN's: cheaper per step than the 3D one at the same voxels.
    assert pretext_step_flops("cyclegan-2d", s) < pretext_step_flops("cyclegan", s)
    assert pretext_flops("cyclegan-2d", s) == s.pretext_steps * pretext_step_flops("cyclegan-2d", s)
    assert artifact.info["steps"] == s.pretext_steps


def test_the_2d_pretext_of_a_3d_task_is_refused_on_2d_tasks(smoke_2d, cache_dir):
    from bench.pretext import PretextContext, get_pretext
    _, s, data = smoke_2d
    ctx = PretextContext(data, s, 0, torch.device("cpu"), "fp32", progress=False)
    with pytest.raises(BenchError, match="pretext cyclegan-2d applies to 3D tasks only"):
        get_pretext("cyclegan-2d", ctx, cache_dir)


def test_axial_slices_keep_subjects_and_splits(smoke_3d):
    from bench.pretext import axial_slices
    _, s, data = smoke_3d
    sliced = axial_slices(data)
    size = s.image_size
    for name in ("train", "val", "test"):
        volumes, slices = data.split(name), sliced.split(name)
        assert slices.t1.shape == (len(volumes) * size, 1, size, size)
        assert torch.equal(slices.subject, volumes.subject.repeat_interleave(size))
        assert torch.equal(slices.t2[size + 3, 0], volumes.t2[1, 0, 3])  # volume 1, axial level 3


@pytest.mark.parametrize("scale", [1.0, 0.1])
def test_transferred_layers_train_at_the_scaled_learning_rate(scale, smoke_2d, smoke_pretexts):
    from dataclasses import replace

    from bench.train import adam, transferred_prefixes
    s = replace(smoke_2d[1], transfer_lr_scale=scale)
    G, D = build_networks(s, seed=1)
    report = strategies.get_strategy("cyclegan-with-d").initialize(G, D, smoke_pretexts)  # trunk, D body
    opt_g = adam(G, 1e-3, s, transferred_prefixes(report, "G"))
    opt_d = adam(D, 2e-3, s, transferred_prefixes(report, "D"))
    rates = {id(p): g["lr"] for g in opt_g.param_groups for p in g["params"]}
    for name, param in G.named_parameters():
        expected = 1e-3 * scale if name.startswith("trunk.") else 1e-3  # the stem is fresh
        assert rates[id(param)] == pytest.approx(expected), name
    assert len(rates) == len(list(G.parameters()))
    rates = {id(p): g["lr"] for g in opt_d.param_groups for p in g["params"]}
    for name, param in D.named_parameters():  # the head is fresh
        expected = 2e-3 * scale if name.startswith("model.") else 2e-3
        assert rates[id(param)] == pytest.approx(expected), name


def test_the_pretext_key_ignores_the_gans_own_settings(smoke_2d):
    """Tuning the GAN (its learning rates, betas, R1) reuses the pretext; the pretext's own
    settings and its seed make another one."""
    from dataclasses import replace

    from bench.pretext import PretextContext, pretext_key
    _, s, data = smoke_2d

    def key(settings, seed=0):
        return pretext_key("cyclegan", PretextContext(data, settings, seed, torch.device("cpu"),
                                                      "fp32", False))

    base = key(s)
    assert key(replace(s, beta1=0.0, lr_g=1e-3, r1_gamma=5.0, ema_decay=0.0)) == base
    assert key(replace(s, pretext_beta1=0.9)) != base
    assert key(replace(s, pretext_lr=1e-3)) != base
    other = next(u for u in UPSAMPLINGS if u != s.upsample)
    assert key(replace(s, upsample=other)) != base  # another trunk
    assert key(s, seed=1) != base
