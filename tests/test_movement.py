"""How far training moved the weights: the numbers on a known change, in rows and the report."""

import pytest
import torch

from bench.movement import PARTS, snapshot, weight_movement
from bench.nets import build_networks
from bench.profiles import get_settings
from reports import write_report


def test_movement_on_a_known_change():
    G, D = build_networks(get_settings("smoke", 2), seed=0)
    start = snapshot(G, D)
    with torch.no_grad():
        for p in G.trunk.encoder.parameters():
            p.mul_(1.5)  # every weight half as large again: distance 0.5 of the norm
        w = D.model[0].weight
        w.copy_(-w)  # one tensor of D's body flipped: distance 2 ||w|| over the body's norm
    moved = weight_movement(start, G, D)
    assert set(moved) == set(PARTS)
    assert moved["encoder"] == pytest.approx(0.5, rel=1e-5)
    assert moved["stem"] == moved["residual"] == moved["decoder"] == moved["head"] == 0.0
    body = sum(float(t.pow(2).sum()) for k, t in start["D"].items() if k.startswith("model."))
    first = float(start["D"]["model.0.weight"].pow(2).sum())
    assert moved["discriminator"] == pytest.approx(2 * (first / body) ** 0.5, rel=1e-5)
    with torch.no_grad():
        G.stem.fc.weight.fill_(float("nan"))
    assert weight_movement(start, G, D)["stem"] is None


def test_units_record_movement_and_the_report_shows_it(tmp_path, cache_dir):
    import json

    from bench.run import RunConfig, run
    out = tmp_path / "run"
    write_report([run(RunConfig(strategies=["scratch", "cyclegan-t2t1"], tasks=["phantom-2d"],
                                out=out, profile="smoke", seeds=1, device="cpu", precision="fp32",
                                cache_dir=cache_dir, progress=False))])
    rows = {r["strategy"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    for row in rows.values():
        assert set(row["movement"]) == set(PARTS)
        assert all(v is not None and v > 0 for v in row["movement"].values())  # all trained
    # The same seed, the same fresh stem and D, but another trunk start: another trajectory.
    assert rows["cyclegan-t2t1"]["movement"]["residual"] != rows["scratch"]["movement"]["residual"]
    text = (out / "report.md").read_text()
    assert "### How far training moved the weights" in text
    line = next(l for l in text.splitlines() if l.startswith("| cyclegan-t2t1 |")
                and "(T)" in l)
    assert line.count("(T)") == 3  # encoder, residual, decoder
