"""The training-set-size and pretext-budget axes: nested subsets, variants keyed apart, the
metric unchanged along an axis, and the report's section."""

import json
from dataclasses import replace

import pytest
import torch

from bench.variants import Variant, parse_values, plan_variants
from ground.errors import BenchError
from reports import write_report


def test_train_subsets_are_nested_by_subject_and_leave_val_and_test_whole(smoke_2d):
    from datasets.subsets import subject_order, train_subset
    _, s, data = smoke_2d
    order = subject_order(data)
    assert sorted(order) == torch.unique(data.train.subject).tolist()  # a permutation
    kept = {}
    for n in (1, 3, 5):
        sub = train_subset(data, n)
        kept[n] = set(torch.unique(sub.train.subject).tolist())
        assert kept[n] == set(order[:n])
        per_subject = len(data.train) // len(order)  # every subject keeps all its images
        assert len(sub.train) == n * per_subject
        for name in ("val", "test"):
            assert torch.equal(sub.split(name).t1, data.split(name).t1)
        assert sub.fingerprint != data.fingerprint
        mask = torch.isin(data.train.subject, torch.tensor(order[:n]))
        assert torch.equal(sub.train.t2, data.train.t2[mask])  # pairs stay paired
    assert kept[1] < kept[3] < kept[5]  # nested
    assert train_subset(data, len(order)) is data  # all of them: the task itself
    other = subject_order(replace(data, data_seed=1))
    assert other != order  # seeded by the data seed
    for bad in (0, len(order) + 1):
        with pytest.raises(BenchError, match=f"has {len(order)} training subjects"):
            train_subset(data, bad)


def test_variants_are_named_and_planned_per_axis_value(smoke_2d):
    spec, s, _ = smoke_2d
    variants = plan_variants([spec], [3, 10], [0.5, 2.0])
    assert [v.name for v in variants] == ["phantom-2d@3@pretext0.5", "phantom-2d@3@pretext2",
                                          "phantom-2d@10@pretext0.5", "phantom-2d@10@pretext2"]
    assert [v.name for v in plan_variants([spec])] == ["phantom-2d"]
    assert Variant(spec, pretext_scale=2.0).settings(s).pretext_steps == 2 * s.pretext_steps
    assert Variant(spec).settings(s) is s
    with_key = replace(spec, train_subjects=(2, 4))  # a task file's `train_subjects`
    assert [v.name for v in plan_variants([with_key])] == ["phantom-2d@2", "phantom-2d@4"]
    assert [v.name for v in plan_variants([with_key], [3])] == ["phantom-2d@3"]  # the flag wins
    assert parse_values("25,10,25", int, "train-subjects") == [10, 25]
    for text in ("0,5", "ten", ""):
        with pytest.raises(BenchError, match="--train-subjects"):
            parse_values(text, int, "train-subjects")


def test_pretexts_are_keyed_apart_per_subset_and_per_budget(smoke_2d):
    from bench.pretext import PretextContext, pretext_key
    from datasets.subsets import train_subset
    spec, s, data = smoke_2d

    def key(name, variant):
        ctx = PretextContext(variant.data(data), variant.settings(s), 0, torch.device("cpu"),
                             "fp32", False)
        return pretext_key(name, ctx)

    for name in ("cyclegan", "autoencoder"):
        keys = {key(name, v) for v in (Variant(spec), Variant(spec, 3), Variant(spec, 4),
                                       Variant(spec, pretext_scale=0.5),
                                       Variant(spec, pretext_scale=2.0))}
        assert len(keys) == 5, name
        assert key(name, Variant(spec, 6)) == key(name, Variant(spec))  # 6 of 6: the task itself
    assert train_subset(data, 6) is data


def test_a_task_file_declares_the_axis(tmp_path):
    from datasets.spec import get_task, load_task_file
    text = "train_subjects = [25, 10]\n" + get_task("phantom-2d").path.read_text()
    (tmp_path / "t.toml").write_text(text)
    spec = load_task_file(tmp_path / "t.toml")
    assert spec.train_subjects == (10, 25)
    assert spec.content() == get_task("phantom-2d").content()  # the data are the same
    (tmp_path / "bad.toml").write_text(text.replace("[25, 10]", "[0]"))
    with pytest.raises(BenchError, match="train_subjects must be a list of positive"):
        load_task_file(tmp_path / "bad.toml")


def _rows(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_a_run_along_both_axes(tmp_path, cache_dir):
    from bench.run import RunConfig, run
    base = RunConfig(strategies=["scratch", "cyclegan-t2t1"], tasks=["phantom-2d"],
                     out=tmp_path / "subjects", profile="smoke", seeds=1, device="cpu",
                     precision="fp32", cache_dir=cache_dir, progress=False, train_subjects=[3, 6])
    write_report([run(base)])
    rows = {(r["task"], r["strategy"]): r for r in _rows(base.out)}
    assert set(rows) == {(t, s) for t in ("phantom-2d@3", "phantom-2d@6")
                         for s in ("scratch", "cyclegan-t2t1")}
    small, full = rows[("phantom-2d@3", "cyclegan-t2t1")], rows[("phantom-2d@6", "cyclegan-t2t1")]
    assert small["settings"]["train_subjects_used"] == 3 and full["settings"]["train_subjects_used"] == 6
    assert small["settings"]["base_task"] == "phantom-2d" and small["settings"]["train_subjects"] == 3
    # Its own pretext per N, and the same metric at every N: feature network, floor, ceiling.
    assert small["pretexts"]["cyclegan"]["key"] != full["pretexts"]["cyclegan"]["key"]
    for field in ("feature_net", "domain_key", "fid_floor", "fid_ceiling", "floors", "ceilings"):
        assert small["reference"][field] == full["reference"][field], field
    assert small["settings"]["data_fingerprint"] != full["settings"]["data_fingerprint"]
    text = (base.out / "report.md").read_text()
    assert "## Along the axes" in text and "### phantom-2d: the effect against the training subjects" in text
    assert (base.out / "figures" / "axis-subjects_phantom-2d.png").is_file()
    assert "A variant of phantom-2d (see Along the axes): every line is secondary." in text
    comparisons = [json.loads(json.dumps(c)) for c in
                   __import__("pandas").read_csv(base.out / "comparisons.csv").to_dict("records")]
    assert {c["family"] for c in comparisons if c["metric"] == "fid_final"} == {"secondary"}

    scaled = replace(base, out=tmp_path / "pretext", train_subjects=None, pretext_scales=[0.5, 2.0])
    write_report([run(scaled)])
    rows = {r["task"]: r for r in _rows(scaled.out) if r["strategy"] == "cyclegan-t2t1"}
    steps = {task: r["pretexts"]["cyclegan"]["steps"] for task, r in rows.items()}
    assert steps == {"phantom-2d@pretext0.5": 2, "phantom-2d@pretext2": 8}  # smoke: 4 steps
    scratch = {r["task"]: r for r in _rows(scaled.out) if r["strategy"] == "scratch"}
    # A longer pretext costs more: scratch trains on further to match it.
    assert (scratch["phantom-2d@pretext2"]["budgets"]["cyclegan-t2t1"]["step"]
            >= scratch["phantom-2d@pretext0.5"]["budgets"]["cyclegan-t2t1"]["step"])
    assert (rows["phantom-2d@pretext2"]["compute"]["total_flops"]
            > rows["phantom-2d@pretext0.5"]["compute"]["total_flops"])
    text = (scaled.out / "report.md").read_text()
    assert "the effect against the CycleGAN pretext steps" in text and "T2→T1 SSIM" in text
