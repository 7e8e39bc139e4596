import dataclasses

import pytest
import torch

from bench.nets import build_networks
from bench.noise_path import relative_spread, spread_by_stage
from bench.profiles import get_settings


def test_relative_spread_is_zero_for_copies_and_scale_free():
    x = torch.randn(1, 3, 8, 8).expand(5, -1, -1, -1)
    assert relative_spread(x) == 0
    y = torch.randn(5, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert relative_spread(y) > 0
    assert relative_spread(3 * y) == pytest.approx(relative_spread(y), rel=1e-6)


def test_every_stage_is_measured_and_a_silent_stem_silences_the_trunk():
    s = dataclasses.replace(get_settings("smoke", 2), n_blocks=2)
    G, _ = build_networks(s, 0)
    z = torch.randn(8, s.z_dim)
    spread = spread_by_stage(G, z)
    assert list(spread) == ["stem", "encoder", "residual 1", "residual 2", "decoder"]
    assert all(v > 0 for v in spread.values())
    assert G.training  # the measure leaves G as it found it
    with torch.no_grad():
        G.stem.fc.weight.zero_()
    assert all(v < 1e-5 for v in spread_by_stage(G, z).values())
