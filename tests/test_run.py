"""Runs in the smoke profile: resume, divergence, failures, the example plugin, CLI errors."""

import json
from pathlib import Path

import pytest

import bench.run
import bench.unit.lifecycle
from bench.cli import main
from bench.run import RunConfig, parse_shard, run
from ground.errors import BenchError
from reports import write_report
from strategies import Strategy, register_strategy

REPO = Path(__file__).resolve().parents[1]


def _config(out, cache, strategies=("scratch",), seeds=1, **kw):
    return RunConfig(strategies=list(strategies), tasks=["phantom-2d"], out=out, profile="smoke",
                     seeds=seeds, device="cpu", precision="fp32", cache_dir=cache, progress=False,
                     **kw)


def _rows(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_finished_units_are_not_rerun(tmp_path, cache_dir, monkeypatch):
    out = tmp_path / "run"
    run(_config(out, cache_dir))
    first = _rows(out)
    assert [r["unit"] for r in first] == ["phantom-2d/scratch/seed0"]
    assert first[0]["status"] == "ok" and first[0]["metrics"]["fid_final"] > 0

    calls = []
    real_train = bench.unit.lifecycle.train
    monkeypatch.setattr(bench.unit.lifecycle, "train", lambda *a, **k: calls.append(a[1].seed) or real_train(*a, **k))
    run(_config(out, cache_dir, seeds=2))
    assert calls == [1]  # only the new seed trained
    rows = _rows(out)
    assert [r["unit"] for r in rows] == ["phantom-2d/scratch/seed0", "phantom-2d/scratch/seed1"]
    assert rows[0] == first[0]


def test_a_nan_unit_is_diverged_and_the_others_finish(tmp_path, cache_dir, nan_strategy):
    out = tmp_path / "run"
    report = write_report([run(_config(out, cache_dir, strategies=("nan-init", "scratch")))])["report"]
    rows = {r["strategy"]: r for r in _rows(out)}
    assert rows["nan-init"]["status"] == "diverged"
    assert rows["nan-init"]["diverged_step"] == 0
    assert "non-finite loss" in rows["nan-init"]["reason"]
    assert rows["nan-init"]["metrics"]["fid_final"] is None
    assert "fid_final" in rows["nan-init"]["metrics_missing"]
    assert rows["scratch"]["status"] == "ok"
    text = report.read_text()
    assert "nan-init" in text and "non-finite loss" in text


def test_a_unit_that_raises_is_failed_and_retried_on_rerun(tmp_path, cache_dir):
    @register_strategy("raises")
    class Raises(Strategy):
        description = "raises inside initialize"

        def initialize(self, G, D, pretexts):
            raise RuntimeError("boom")

    out = tmp_path / "run"
    run(_config(out, cache_dir, strategies=("raises", "scratch")))
    rows = {r["strategy"]: r for r in _rows(out)}
    assert rows["raises"]["status"] == "failed" and "boom" in rows["raises"]["reason"]
    assert rows["scratch"]["status"] == "ok"
    run(_config(out, cache_dir, strategies=("raises", "scratch")))
    assert sorted(r["strategy"] for r in _rows(out)) == ["raises", "scratch"]  # replaced, not duplicated


def test_the_readme_example_plugin_runs_in_the_smoke_profile(tmp_path, run_env):
    out = tmp_path / "run"
    rc = main(["run", "--plugin", str(REPO / "examples" / "cyclegan_d_only.py"), "--strategy",
               "cyclegan-d-only", "--task", "phantom-2d", "--profile", "smoke", "--seeds", "1",
               "--out", str(out), "--no-progress", "--device", "cpu"])
    assert rc == 0
    (row,) = _rows(out)
    assert row["status"] == "ok" and row["strategy_origin"].startswith("plugin ")
    # D's body: every D parameter but its head, which stays fresh.
    from bench.nets import build_networks
    from bench.profiles import get_settings
    _, D = build_networks(get_settings("smoke", 2), 0)
    head = sum(p.numel() for p in D.head.parameters())
    assert row["transfer"]["discriminator"] == row["transfer"]["d_parameters"] - head > 0
    assert row["transfer"]["encoder"] == row["transfer"]["decoder"] == 0  # G stays fresh
    assert row["pretexts"]["cyclegan"]["steps"] > 0


@pytest.mark.parametrize("args,message", [
    (["--task", "nope"], "unknown task 'nope'"),
    (["--profile", "huge"], "unknown profile 'huge'"),
    (["--precision", "fp8"], "unknown precision 'fp8'"),
    (["--recipe", "fancy"], "unknown recipe 'fancy'"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--seeds", "0"], "need at least 1"),
    (["--shard", "2/2"], "need 0 <= I < N"),
    (["--plugin", "no/such/file.py"], "does not exist"),
    (["--strategy", "scratch,cyclegan-2d-inflated", "--task", "phantom-2d"],
     "cyclegan-2d-inflated applies to 3D tasks only"),
    (["--train-subjects", "0,5"], "--train-subjects '0,5': give positive values"),
    (["--train-subjects", "99", "--task", "phantom-2d"],
     "--train-subjects 99: task phantom-2d has 6 training subjects"),
    (["--pretext-steps-scale", "x"], "--pretext-steps-scale 'x': expected comma-separated"),
])
def test_bad_run_arguments_are_one_line_errors(tmp_path, run_env, capsys, args, message):
    out = tmp_path / "run"
    rc = main(["run", "--profile", "smoke", "--out", str(out), "--no-progress", *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1
    assert not out.exists()  # nothing half-written


@pytest.mark.parametrize("key", ["noise_input", "upsample"])
def test_an_unknown_network_choice_in_the_profiles_is_a_one_line_error(tmp_path, run_env, capsys,
                                                                        monkeypatch, key):
    from bench import profiles
    defaults = profiles._table()["defaults"]
    table = {**profiles._table(),
             "defaults": {**defaults, "networks": {**defaults["networks"], key: "film"}}}
    monkeypatch.setattr(profiles, "_table", lambda: table)
    out = tmp_path / "run"
    rc = main(["run", "--profile", "smoke", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and f"{key} = 'film' in bench/profiles.toml" in err and err.count("\n") == 1
    assert not out.exists()


def test_strategy_all_leaves_out_what_applies_to_none_of_the_tasks_and_seeds_follow_the_plan(
        monkeypatch):
    import bench.cli
    seen = {}
    monkeypatch.setattr("bench.run.run", lambda cfg: seen.setdefault("cfg", cfg))
    monkeypatch.setattr("reports.write_report", lambda dirs, out=None: {"report": "report.md"})
    for task, inflated, seeds in (("phantom-2d", False, 9), ("phantom-2d,phantom-3d", True, 10)):
        assert bench.cli.main(["run", "--task", task, "--no-progress"]) == 0
        cfg = seen.pop("cfg")
        assert ("cyclegan-2d-inflated" in cfg.strategies) is inflated
        assert {"scratch", "cyclegan-t2t1", "autoencoder-trunk", "cyclegan-shuffled"} <= set(
            cfg.strategies)
        assert cfg.seeds == seeds  # enough for a verdict in the secondary family
    assert bench.cli.main(["run", "--strategy", "scratch,cyclegan-t2t1", "--no-progress"]) == 0
    assert seen.pop("cfg").seeds == 7  # the primary family alone


def test_the_plain_recipe_runs_is_recorded_and_does_not_mix_with_stabilized(tmp_path, cache_dir,
                                                                           capsys):
    out = tmp_path / "plain"
    write_report([run(_config(out, cache_dir, strategies=("scratch", "cyclegan-t2t1"), recipe="plain"))])
    rows = _rows(out)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    for r in rows:
        assert r["settings"]["recipe"] == "plain"
        harness = r["settings"]["harness"]
        assert (harness["mbstd_group"], harness["augment"], harness["r1_reduction"],
                harness["mode_seeking"]) == (0, "none", "sum", 0.0)
    assert ("Training recipe: plain (mbstd_group 0, augment none, r1_reduction sum, "
            "mode_seeking 0.0)") in (out / "report.md").read_text()
    # The same directory refuses the other recipe; reports refuse to merge the two.
    rc = main(["run", "--strategy", "scratch", "--task", "phantom-2d", "--profile", "smoke",
               "--out", str(out), "--no-progress", "--device", "cpu", "--precision", "fp32"])
    assert rc == 2 and "recipe='plain'" in capsys.readouterr().err
    other = tmp_path / "stabilized"
    run(_config(other, cache_dir, strategies=("cyclegan-partial",)))
    assert _rows(other)[0]["settings"]["harness"]["mbstd_group"] > 0
    rc = main(["report", str(out), str(other), "--out", str(tmp_path / "merged")])
    assert rc == 2 and "different training recipe" in capsys.readouterr().err


def test_rerun_with_other_settings_in_the_same_directory_is_refused(tmp_path, cache_dir, capsys):
    out = tmp_path / "run"
    run(_config(out, cache_dir))
    rc = main(["run", "--strategy", "scratch", "--task", "phantom-2d", "--profile", "quick",
               "--out", str(out), "--no-progress"])
    assert rc == 2 and "profile='smoke'" in capsys.readouterr().err
    # A run whose precision `auto` chose elsewhere resumes only with that precision named.
    rc = main(["run", "--strategy", "scratch", "--task", "phantom-2d", "--profile", "smoke",
               "--out", str(out), "--no-progress", "--device", "cpu", "--precision", "bf16"])
    assert rc == 2 and "resume it with --precision fp32" in capsys.readouterr().err


def test_a_failing_pretext_fails_only_the_units_that_need_it(tmp_path, monkeypatch):
    from dataclasses import replace

    import bench.pretext
    real = bench.pretext.PRETEXTS["cyclegan"]

    def diverges(ctx):
        state, info = real.train(ctx)
        state["G_t2t1"] = {k: v * float("nan") for k, v in state["G_t2t1"].items()}
        return state, info

    def crashes(ctx):
        raise RuntimeError("pretext exploded")

    monkeypatch.setitem(bench.pretext.PRETEXTS, "cyclegan", replace(real, train=diverges))
    out = tmp_path / "run"
    run(_config(out, tmp_path / "cache", strategies=("cyclegan-t2t1", "scratch")))
    rows = {r["strategy"]: r for r in _rows(out)}
    assert rows["cyclegan-t2t1"]["status"] == "failed"
    assert ("pretext cyclegan (seed 0) failed: PretextDiverged: non-finite weights"
            in rows["cyclegan-t2t1"]["reason"])
    assert rows["cyclegan-t2t1"]["settings"]["device"] == "cpu"
    assert rows["cyclegan-t2t1"]["failure"] == "pretext"  # a training outcome: counted as lost
    assert rows["scratch"]["status"] == "ok"
    assert not list((tmp_path / "cache").glob("pretexts/*cyclegan*"))

    # A crash is no training outcome: the unit fails as an error, rerun before any verdict.
    monkeypatch.setitem(bench.pretext.PRETEXTS, "cyclegan", replace(real, train=crashes))
    run(_config(tmp_path / "crash", tmp_path / "cache", strategies=("cyclegan-t2t1",)))
    (row,) = _rows(tmp_path / "crash")
    assert row["failure"] == "error" and "RuntimeError: pretext exploded" in row["reason"]


def test_readme_shows_the_example_plugin_verbatim():
    example = (REPO / "examples" / "cyclegan_d_only.py").read_text()
    assert example in (REPO / "README.md").read_text()
    assert len(example.splitlines()) <= 30


def test_shards_keep_a_seed_together_and_each_seed_has_its_pretext(tmp_path, cache_dir):
    from dataclasses import replace

    from reports import load_results
    base = _config(tmp_path / "x", cache_dir, strategies=("scratch", "cyclegan-t2t1"), seeds=3)
    dirs = [tmp_path / f"shard{i}" for i in range(2)]
    for i, out in enumerate(dirs):
        write_report([run(replace(base, out=out, shard=(i, 2)))])
    rows = [_rows(out) for out in dirs]
    # (task, seed) groups 0 and 2 on the first machine, 1 on the second, both strategies each.
    assert [sorted((r["seed"], r["strategy"]) for r in shard) for shard in rows] == [
        [(0, "cyclegan-t2t1"), (0, "scratch"), (2, "cyclegan-t2t1"), (2, "scratch")],
        [(1, "cyclegan-t2t1"), (1, "scratch")]]
    everything = {f"phantom-2d/{s}/seed{k}" for s in ("scratch", "cyclegan-t2t1") for k in range(3)}
    assert set(load_results(dirs)["unit"]) == everything  # disjoint and complete
    transfer = [r for shard in rows for r in shard if r["strategy"] == "cyclegan-t2t1"]
    assert {r["seed"]: r["pretexts"]["cyclegan"]["seed"] for r in transfer} == {0: 0, 1: 1, 2: 2}
    assert len({r["pretexts"]["cyclegan"]["key"] for r in transfer}) == 3
    assert len({r["pretexts"]["cyclegan"]["weights"] for r in transfer}) == 3
    assert not any(r["settings"]["pretext_shared"] for r in transfer)
    text = (dirs[0] / "report.md").read_text()
    assert "One pretext per seed" in text
    assert "- phantom-2d cyclegan, over 2 pretext seeds: SSIM " in text
    with pytest.raises(BenchError, match="holds a run with shard"):
        run(replace(base, out=dirs[0], shard=(1, 2)))

    shared = tmp_path / "shared"
    run(replace(base, out=shared, seeds=2, pretext_seed=0, strategies=["cyclegan-t2t1"]))
    one = _rows(shared)
    assert {r["pretexts"]["cyclegan"]["key"] for r in one} == {transfer[0]["pretexts"]["cyclegan"]["key"]}
    assert all(r["settings"]["pretext_shared"] and r["settings"]["pretext_seed"] == 0 for r in one)


@pytest.mark.parametrize("text, message", [("1", "expected I/N"), ("a/b", "expected I/N"),
                                            ("3/3", "0 <= I < N"), ("-1/2", "0 <= I < N")])
def test_bad_shards_are_one_line_errors(text, message):
    with pytest.raises(BenchError, match=message):
        parse_shard(text)


def test_a_shard_without_units_is_refused_before_writing(tmp_path, cache_dir):
    from dataclasses import replace
    out = tmp_path / "run"
    with pytest.raises(BenchError, match="has no units"):
        run(replace(_config(out, cache_dir), shard=(1, 2)))
    assert not out.exists()
