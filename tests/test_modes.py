"""The phantom's known modes and the ground-truth mode metric: factors change the anatomy they
name, 2D slices carry their level and the factors they show, the metric counts modes on
controlled sets, the classifier reads the factors back from images, and the suite drops true
modes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from bench.metrics import degrade
from bench.metrics.modes import (COVERED_SHARE, MIN_EXPECTED, ModeReference, accuracy,
                                 get_mode_classifier, level_scores, scores)
from bench.metrics.registry import REGISTRY, Reference, Sample
from bench.metrics.scores import MetricError
from bench.profiles import get_settings
from datasets import factors, phantom
from datasets.build import build_task_data
from datasets.spec import get_task

pytestmark = pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")


def _render(size: int, **levels: int) -> phantom.Subject:
    """Subject 0 of data seed 0 with its factors set: the same deformation, noise and tissues."""
    real = factors.draw

    def fixed(rng):
        out = real(rng)
        out.update(levels)
        return out

    factors.draw = fixed
    try:
        return phantom.render_subject(0, 0, size)
    finally:
        factors.draw = real


def test_factors_change_the_anatomy_they_name():
    size = 32
    base = _render(size, head=1, ventricles=0, lesion=0)
    small = _render(size, head=0, ventricles=0, lesion=0)
    ratio = float(small.brain.sum()) / float(base.brain.sum())
    assert ratio == pytest.approx(factors.HEAD_SCALE[0] ** 3, rel=0.1)

    grown = [_render(size, head=1, ventricles=v, lesion=0) for v in (0, 1, 2)]
    volume = [float(g.ventricles.sum()) for g in grown]
    assert volume[0] < volume[1] < volume[2] and volume[2] > 2 * volume[0]

    csf = phantom.LABELS.index("csf")
    for kind in (1, 2):
        subject = _render(size, head=1, ventricles=0, lesion=kind)
        inside = subject.lesion > 0.5
        assert inside.sum() > 0 and subject.factors["lesion"] == kind
        assert (subject.labels[inside] == phantom.LABELS.index("lesion")).float().mean() > 0.5
        # darker than the same voxels without the lesion in T1w, brighter in T2w
        assert subject.t1[inside].mean() < base.t1[inside].mean() - 0.1
        assert subject.t2[inside].mean() > base.t2[inside].mean() + 0.1
    assert base.lesion.sum() == 0 and (base.labels != csf).any()


def test_factor_draws_follow_their_frequencies():
    rng = np.random.default_rng(0)
    draws = [factors.draw(rng) for _ in range(3000)]
    for f in factors.FACTORS:
        counts = np.bincount([d[f.name] for d in draws], minlength=len(f.levels)) / len(draws)
        assert np.allclose(counts, f.frequencies, atol=0.04), f.name


def test_2d_slices_carry_level_and_only_the_factors_they_show():
    subject = _render(32, head=0, ventricles=2, lesion=2)
    levels = list(range(4, 28))
    labels = factors.slice_labels(subject.factors, levels, 0, subject.ventricles, subject.lesion)
    assert labels[:, 0].tolist() == sorted(labels[:, 0].tolist())
    assert set(labels[:, 0].tolist()) == set(range(factors.LEVEL_BINS))
    assert (labels[:, 1] == 0).all()
    not_shown = factors.classes("ventricles", 2).index(factors.NOT_SHOWN)
    shown = labels[:, 2] != not_shown
    assert 0 < shown.sum() < len(levels) and (labels[shown, 2] == 2).all()
    assert set(labels[:, 3].tolist()) == {0, 2}
    # a slice far above the ventricles shows neither
    assert labels[0, 2] == not_shown and labels[0, 3] == 0


def test_task_data_records_labels_per_image(smoke_2d, smoke_3d):
    for _, s, data in (smoke_2d, smoke_3d):
        assert data.mode_columns == factors.columns(s.dims, labelled=True)
        for split in (data.train, data.val, data.test):
            assert split.modes.shape == (len(split), len(data.mode_columns))
        kept = data.train.select(data.train.subject == data.train.subject[0])
        assert len(kept.modes) == len(kept) > 0


class _Reads:
    """A classifier that reads labels written into the images' first voxels."""

    def __init__(self, columns: int):
        self.columns = columns

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)[:, : self.columns].round().long()


def _as_images(labels: torch.Tensor) -> torch.Tensor:
    x = torch.zeros(len(labels), 1, 4, 4)
    x.view(len(labels), -1)[:, : labels.shape[1]] = labels.float()
    return x


def _reference(k: int = 6) -> ModeReference:
    return ModeReference(_Reads(2), {(m, 0): 1 / k for m in range(k)})


def test_mode_metric_on_controlled_sets():
    ref, n = _reference(6), 60
    every = torch.tensor([[m % 6, 0] for m in range(n)])
    full = scores(ref, every)
    assert full["modes_covered"] == full["modes_k"] == 6 and full["mode_tv"] == 0
    missing_one = torch.tensor([[m % 5, 0] for m in range(n)])
    assert scores(ref, missing_one)["modes_covered"] == 5
    assert scores(ref, missing_one)["mode_tv"] == pytest.approx(1 / 6)
    one = torch.zeros(n, 2, dtype=torch.long)
    assert scores(ref, one)["modes_covered"] == 1
    assert scores(ref, one)["mode_tv"] == pytest.approx(5 / 6)
    # a mode with less than COVERED_SHARE of its expected count is not covered
    few = int(COVERED_SHARE * n / 6) - 1
    thin = torch.cat([torch.tensor([[5, 0]] * few), torch.tensor([[m % 5, 0] for m in range(n - few)])])
    assert scores(ref, thin)["modes_covered"] == 5
    # K holds only the modes expected at least MIN_EXPECTED times at this n
    assert scores(ref, every[: int(6 * MIN_EXPECTED) - 1])["modes_k"] == 0
    with pytest.raises(MetricError, match="no mode labels"):
        scores(None, every)


def test_level_histogram_sees_dropped_levels():
    """Slices of known level (any 2D source): a set without the lowest levels covers fewer."""
    bins = factors.level_bins(24)
    labels = torch.cat([bins] * 20)[:, None]
    counts = torch.bincount(labels[:, 0]).double() / len(labels)
    ref = ModeReference(_Reads(1), {(b,): float(c) for b, c in enumerate(counts)})
    assert scores(ref, labels)["modes_covered"] == factors.LEVEL_BINS
    upper = labels[labels[:, 0] < factors.LEVEL_BINS - 2]
    out = scores(ref, upper)
    assert out["modes_covered"] == factors.LEVEL_BINS - 2 and out["mode_tv"] == pytest.approx(1 / 3)


class _Named(_Reads):
    """_Reads with the column names a ModeClassifier carries."""

    def __init__(self, columns: tuple[str, ...]):
        super().__init__(len(columns))
        self.columns = columns

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)[:, : len(self.columns)].round().long()


def test_levels_covered_names_a_missing_level_among_joint_modes():
    """Joint (level, head) modes: a set without the cerebellar levels covers fewer levels even
    where the joint modes of the other levels are all there."""
    bins = factors.level_bins(24)
    labels = torch.stack([torch.cat([bins] * 20), torch.arange(480) % 2], 1)
    freq = {m: c / len(labels) for m, c in
            zip(*torch.unique(labels, dim=0, return_counts=True))}
    ref = ModeReference(_Named((factors.LEVEL, "head")),
                        {tuple(int(v) for v in m): float(c) for m, c in freq.items()})
    ref_x = Reference(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4), lambda x: x, object(),
                      modes=ref)
    assert REGISTRY["levels_covered"].values(ref_x, Sample(_as_images(labels))) == {
        "levels_covered": factors.LEVEL_BINS, "levels_k": factors.LEVEL_BINS}
    upper = labels[labels[:, 0] < factors.LEVEL_BINS - 2]
    assert level_scores(ref, upper)["levels_covered"] == factors.LEVEL_BINS - 2
    volumes = ModeReference(_Named(("head",)), {(0,): 0.5, (1,): 0.5})
    with pytest.raises(MetricError, match="slice level"):
        level_scores(volumes, labels[:, 1:])
    with pytest.raises(MetricError, match="no mode labels"):
        level_scores(None, labels)


def test_a_2d_only_entry_is_neither_computed_nor_shown_in_3d():
    from bench.metrics.registry import list_metrics
    from reports.catalog import BY_NAME
    assert "levels_covered" in [m.name for m in list_metrics(dims=2)]
    assert "levels_covered" not in [m.name for m in list_metrics(dims=3)]
    assert "modes_covered" in [m.name for m in list_metrics(dims=3)]
    assert BY_NAME["levels_covered"].dims == BY_NAME["levels_k"].dims == (2,)


def test_registry_entries_reach_the_reference():
    ref = Reference(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4), lambda x: x, object(),
                    modes=_reference(6))
    sample = Sample(_as_images(torch.tensor([[m % 3, 0] for m in range(60)])))
    values = REGISTRY["modes_covered"].values(ref, sample)
    assert values == {"modes_covered": 3.0, "modes_k": 6.0}
    assert REGISTRY["mode_tv"].value(ref, sample) == pytest.approx(0.5)
    unlabelled = dataclasses.replace(ref, modes=None)
    with pytest.raises(MetricError, match="no mode labels"):
        REGISTRY["mode_tv"].value(unlabelled, Sample(sample.images))


def test_dropped_modes_drop_true_modes():
    labels = torch.tensor([[h, v, l] for h in (0, 1) for v in range(3) for l in range(3)] * 4)
    coordinate = degrade.mode_coordinate(torch.zeros(len(labels), 1, 2, 2, 2), None, labels)
    pool = degrade.Pool(_as_images(labels), coordinate, torch.zeros(1))
    kept = degrade.drop_modes(pool, 36, 0.5, torch.Generator().manual_seed(0))
    read = _Reads(3)(kept)
    assert (read[:, 0] == 0).all()  # a factor's level (the large heads) never drawn


def test_classifier_reads_factors_back_at_smoke_size(cache_dir):
    """Held-out accuracy far above chance at the smoke profile's 32^2 slices."""
    s = dataclasses.replace(get_settings("smoke", 2), mode_steps=150, mode_batch=32)
    data = build_task_data(get_task("phantom-2d"), s.image_size, cache_dir,
                           splits={"train": 40, "val": 3, "test": 12}, progress=False)
    classifier = get_mode_classifier(data, s, cache_dir, "cpu", progress=False)
    held_out = accuracy(classifier, data.test.t1, data.test.modes)
    assert held_out == classifier.info["test_accuracy"]
    chance = {c: 1 / len(factors.classes(c, 2)) for c in data.mode_columns}
    assert held_out["head"] > 0.9 and held_out["level"] > 0.6, held_out
    assert all(held_out[c] > chance[c] + 0.2 for c in data.mode_columns), held_out
    again = get_mode_classifier(data, s, cache_dir, "cpu", progress=False)  # from the cache
    assert again.key == classifier.key and again.info == classifier.info

