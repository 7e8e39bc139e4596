"""TensorBoard event files: every evaluation's losses, curve metrics, D accuracy and samples,
each step once after a resume."""

from __future__ import annotations

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import bench.train
from bench.metrics.evaluation import Evaluator
from bench.nets import build_networks
from bench.tensorboard_log import UnitLog, sample_view
from bench.train import train_unit


def _events(log_dir):
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def _unit(data, s, cache_dir, log_dir, checkpoint=None):
    G, D = build_networks(s, seed=1)
    ev = Evaluator(data, s, torch.device("cpu"), "fp32", cache_dir, progress=False,
                   inception=False)
    with UnitLog(log_dir) as log:
        return train_unit(G, D, data, s, 1, torch.device("cpu"), "fp32", ev,
                          checkpoint=checkpoint, progress=False, log=log)


def test_each_evaluation_is_logged_once_even_after_a_resume(smoke_2d, cache_dir, tmp_path,
                                                              monkeypatch):
    _, s, data = smoke_2d
    log_dir, checkpoint = tmp_path / "tb", tmp_path / "unit.pt"
    real_save = bench.train._save_checkpoint

    def killed_while_saving(path, payload):
        # The last evaluation is logged, then the process dies before its checkpoint: the
        # resumed unit redoes it from the one before, and its first logging must not repeat.
        if payload["step"] == s.steps:
            raise KeyboardInterrupt
        real_save(path, payload)

    monkeypatch.setattr(bench.train, "_save_checkpoint", killed_while_saving)
    with pytest.raises(KeyboardInterrupt):
        _unit(data, s, cache_dir, log_dir, checkpoint)
    assert [e.step for e in _events(log_dir).Scalars("metric/fid")] == [0, s.eval_every, s.steps]
    monkeypatch.setattr(bench.train, "_save_checkpoint", real_save)
    result = _unit(data, s, cache_dir, log_dir, checkpoint)

    acc = _events(log_dir)
    tags = acc.Tags()
    assert {"metric/fid", "metric/coverage", "metric/msssim", "loss/g", "loss/d",
            "d_accuracy/real", "d_accuracy/fake"} <= set(tags["scalars"])
    steps = [e.step for e in acc.Scalars("metric/fid")]
    assert steps == [p.step for p in result.curve] == [0, s.eval_every, s.steps]
    assert [e.value for e in acc.Scalars("metric/fid")] == pytest.approx(
        [p.get("fid") for p in result.curve])
    assert [e.step for e in acc.Scalars("loss/g")] == [s.eval_every, s.steps]  # none at step 0
    assert [e.step for e in acc.Images("samples")] == steps

    # A unit that starts again at step 0 (its checkpoint gone, or measured with another
    # encoder) replaces every earlier event rather than adding a second curve.
    checkpoint.unlink()
    _unit(data, s, cache_dir, log_dir, checkpoint)
    assert [e.step for e in _events(log_dir).Scalars("metric/fid")] == [0, s.eval_every, s.steps]


def test_sample_views_tile_2d_images_and_show_three_planes_of_volumes():
    images = torch.linspace(-1, 1, 5 * 8 * 8).view(5, 1, 8, 8)
    grid = sample_view(images)
    assert grid.shape == (1, 24, 24) and grid.min() >= 0 and grid.max() <= 1
    assert torch.equal(grid[0, :8, 8:16], (images[1, 0] + 1) / 2)  # row-major tiles
    assert (grid[0, 16:, 8:] == 0).all()  # the unused tiles stay blank
    volumes = torch.rand(6, 1, 8, 8, 8) * 2 - 1
    view = sample_view(volumes)
    assert view.shape == (1, 4 * 8, 3 * 8)  # four volumes, a row each
    first = (volumes[0, 0] + 1) / 2
    assert torch.equal(view[0, :8], torch.cat([first[4], first[:, 4], first[:, :, 4]], dim=1))
