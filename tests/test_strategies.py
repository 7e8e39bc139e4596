import pytest
import torch

import strategies
from bench.errors import BenchError
from bench.nets import build_networks

# strategy -> (pretext, source state dict, trunk parts it must transfer)
EXPECTED = {
    "scratch": (None, None, ()),
    "cyclegan-t2t1": ("cyclegan", "G_t2t1", ("encoder", "residual", "decoder")),
    "cyclegan-partial": ("cyclegan", "G_t2t1", ("residual", "decoder")),
    "pretrained-encoder": ("autoencoder", "trunk", ("encoder",)),
}


def test_registry_lists_the_builtins():
    assert set(EXPECTED) <= set(strategies.list_strategies())
    for name in EXPECTED:
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
    bigger = ResnetTrunk(2, ngf=smoke_2d[1].ngf * 2, n_blocks=smoke_2d[1].n_blocks)
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


def test_example_plugin_transfers_trunk_and_discriminator(smoke_2d, smoke_pretexts):
    from pathlib import Path
    example = Path(__file__).resolve().parents[1] / "examples" / "cyclegan_with_d.py"
    strategies.load_plugin(str(example))
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


@pytest.mark.parametrize("scale", [1.0, 0.1])
def test_transferred_layers_train_at_the_scaled_learning_rate(scale, smoke_2d, smoke_pretexts):
    from dataclasses import replace
    from pathlib import Path

    from bench.train import adam, transferred_prefixes
    strategies.load_plugin(str(Path(__file__).resolve().parents[1] / "examples"
                               / "cyclegan_with_d.py"))  # trunk and D's body
    s = replace(smoke_2d[1], transfer_lr_scale=scale)
    G, D = build_networks(s, seed=1)
    report = strategies.get_strategy("cyclegan-with-d").initialize(G, D, smoke_pretexts)
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
    assert key(s, seed=1) != base
