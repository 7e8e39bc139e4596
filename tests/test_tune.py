"""`bench tune` in the smoke profile: equal trial counts, resume without extra trials, pruning,
diverged trials, and `bench run --tuned` applying and recording the best trial."""

from dataclasses import replace

import optuna
import pytest
from optuna.trial import TrialState

from bench.profiles import get_settings
from bench.run import RunConfig, run
from bench.store import read_jsonl
from bench.tuning.storage import open_storage
from bench.tuning.trials import effort
from bench.tuning.tune import COUNTED, TuneConfig, storage_url, study_name, suggest_harness, tune
from bench.unit import TUNING_SEEDS
from ground.errors import BenchError
from reports import write_report

# Tests that play a worker with study.ask(), which Optuna warns about on a heartbeat storage.
plays_a_worker = pytest.mark.filterwarnings("ignore:Heartbeat of storage")


def _config(out, cache, strategies=("scratch", "cyclegan-partial"), trials=2, **kw):
    return TuneConfig(strategies=list(strategies), tasks=["phantom-2d"], out=out, trials=trials,
                      profile="smoke", device="cpu", precision="fp32", cache_dir=cache,
                      progress=False, **kw)


def _states(study):
    return [t.state for t in study.get_trials(deepcopy=False)]


def test_every_study_gets_exactly_n_trials_and_a_rerun_adds_none(tmp_path, cache_dir):
    cfg = _config(tmp_path / "tune", cache_dir)
    studies = tune(cfg)
    assert set(studies) == {study_name("smoke", "phantom-2d", s) for s in cfg.strategies}
    for study in studies.values():
        assert len(_states(study)) == 2 and set(_states(study)) <= set(COUNTED)
    partial = studies[study_name("smoke", "phantom-2d", "cyclegan-partial")]
    assert all({"parts", "transfer_lr_scale"} <= set(t.params) for t in partial.trials)
    scratch = studies[study_name("smoke", "phantom-2d", "scratch")]
    assert all("transfer_lr_scale" not in t.params for t in scratch.trials)  # nothing transferred
    # Trial 0 of a new study runs the profile's own values; the sampler draws the rest.
    s = get_settings("smoke", 2)
    first, second = partial.trials
    assert first.user_attrs["profile_values"] and "profile_values" not in second.user_attrs
    assert {k: first.params[k] for k in ("lr_g", "r1_gamma", "ema_decay", "transfer_lr_scale")} == {
        "lr_g": s.lr_g, "r1_gamma": s.r1_gamma, "ema_decay": s.ema_decay,
        "transfer_lr_scale": s.transfer_lr_scale}
    assert first.params["parts"] in ("residual,decoder", "decoder", "encoder,residual", "encoder")
    assert second.params["lr_g"] != s.lr_g
    assert all(len(_states(s)) == 2 for s in tune(cfg).values())  # resumed: nothing redone
    assert all(len(_states(s)) == 3 for s in tune(replace(cfg, trials=3)).values())


def test_pruned_trials_count_towards_the_budget(tmp_path, cache_dir):
    # Every domain FID is above 0: the threshold pruner stops each trial at its first report.
    cfg = _config(tmp_path / "tune", cache_dir, strategies=("scratch",),
                  pruner=optuna.pruners.ThresholdPruner(upper=0.0))
    (study,) = tune(cfg).values()
    assert _states(study) == [TrialState.PRUNED] * 2


def test_a_diverged_trial_fails_with_its_reason(tmp_path, cache_dir, nan_strategy):
    (study,) = tune(_config(tmp_path / "tune", cache_dir, strategies=(nan_strategy,))).values()
    assert _states(study) == [TrialState.FAIL] * 2
    assert all("non-finite" in t.user_attrs["reason"] for t in study.trials)


def test_run_tuned_applies_and_records_the_best_trial(tmp_path, cache_dir):
    cfg = _config(tmp_path / "tune", cache_dir)
    studies = tune(cfg)
    out = tmp_path / "run"
    write_report([run(RunConfig(strategies=list(cfg.strategies), tasks=["phantom-2d"], out=out,
                                profile="smoke", seeds=1, device="cpu", precision="fp32",
                                cache_dir=cache_dir, progress=False, tuned=storage_url(cfg)))])
    rows = {r["strategy"]: r for _, r in read_jsonl(out / "results.jsonl")}
    for name in cfg.strategies:
        best = studies[study_name("smoke", "phantom-2d", name)].best_trial
        row = rows[name]
        assert row["status"] == "ok" and row["tuned"]["trial"] == best.number
        assert row["tuned"]["params"] == best.params
        assert row["tuned"]["effort"]["complete"] + row["tuned"]["effort"]["fail"] \
            + row["tuned"]["effort"]["pruned"] == 2
        for key in ("lr_g", "lr_d", "beta1", "r1_gamma", "ema_decay"):
            assert row["settings"]["harness"][key] == best.params[key]
        assert row["settings"]["harness"]["transfer_lr_scale"] == \
            best.params.get("transfer_lr_scale", 1.0)
    report = (out / "report.md").read_text()
    assert "### Tuned hyper-parameters" in report
    assert f"smoke/phantom-2d/scratch #{rows['scratch']['tuned']['trial']}" in report
    parts = [p for p in ("encoder", "residual", "decoder")
             if p in rows["cyclegan-partial"]["tuned"]["params"]["parts"]]
    transfer = rows["cyclegan-partial"]["transfer"]
    assert {p for p in ("encoder", "residual", "decoder") if transfer[p] > 0} == set(parts)


def test_each_task_variant_is_tuned_in_its_own_study_on_its_own_subjects(tmp_path, cache_dir):
    cfg = _config(tmp_path / "tune", cache_dir, strategies=("scratch",), trials=1,
                  train_subjects=[3])
    studies = tune(cfg)
    (label,) = studies
    assert label == study_name("smoke", "phantom-2d@3", "scratch")
    out = tmp_path / "run"
    run(RunConfig(strategies=["scratch"], tasks=["phantom-2d"], out=out, profile="smoke",
                  seeds=1, device="cpu", precision="fp32", cache_dir=cache_dir, progress=False,
                  tuned=storage_url(cfg), train_subjects=[3]))
    ((_, row),) = read_jsonl(out / "results.jsonl")
    assert row["task"] == "phantom-2d@3" and row["tuned"]["study"] == label
    # The study recorded the subset it tuned on: the run on the same subset accepts it.
    assert studies[label].user_attrs["split"]["fingerprint"] == row["settings"]["data_fingerprint"]


def test_run_tuned_without_a_study_is_refused_before_writing(tmp_path, cache_dir):
    cfg = _config(tmp_path / "tune", cache_dir, strategies=("scratch",), trials=1)
    tune(cfg)
    out = tmp_path / "run"
    with pytest.raises(BenchError, match="no study smoke/phantom-2d/pretrained-encoder"):
        run(RunConfig(strategies=["pretrained-encoder"], tasks=["phantom-2d"], out=out,
                      profile="smoke", seeds=1, device="cpu", cache_dir=cache_dir,
                      progress=False, tuned=storage_url(cfg)))
    assert not out.exists()


def test_tuning_records_its_split_and_seeds_and_a_run_on_others_is_refused(tmp_path, cache_dir):
    cfg = _config(tmp_path / "tune", cache_dir, strategies=("cyclegan-t2t1",), trials=1)
    (study,) = tune(cfg).values()
    # Trials train with seeds bench run never evaluates; the study says which, and its split.
    assert study.user_attrs["unit_seed"] == TUNING_SEEDS and study.user_attrs["pretext_seed"] == TUNING_SEEDS
    assert study.user_attrs["split"]["data_seed"] == 0
    assert study.user_attrs["recipe"] == "stabilized" and study.user_attrs["precision"] == "fp32"
    pretexts = {p.name for p in (cache_dir / "pretexts").glob("phantom-2d-cyclegan-*")}
    assert pretexts  # the tuning pretext, trained for its own seed

    base = RunConfig(strategies=["cyclegan-t2t1"], tasks=["phantom-2d"], out=tmp_path / "run",
                     profile="smoke", seeds=1, device="cpu", precision="fp32",
                     cache_dir=cache_dir, progress=False, tuned=storage_url(cfg))
    for change, message in (({"data_seed": 1}, r"tuned on the split of data seed 0.*"
                                                r"--data-seed 1"),
                            ({"pretext_seed": TUNING_SEEDS}, r"pretext seed 10000, which this "
                                                              r"run would evaluate on"),
                            ({"recipe": "plain"}, r"tuned with the stabilized recipe, not plain")):
        with pytest.raises(BenchError, match=message):
            run(replace(base, **change))
        assert not base.out.exists()
    # Tuning on with another split would mix trials of two splits in one study.
    with pytest.raises(BenchError, match=r"another data split \(--data-seed\): 0, not 1"):
        tune(replace(cfg, data_seed=1))
    with pytest.raises(BenchError, match=r"another training recipe \(--recipe\): stabilized, "
                                         r"not plain"):
        tune(replace(cfg, recipe="plain"))
    with pytest.raises(BenchError, match=r"another precision \(--precision; auto chooses per "
                                         r"machine\): fp32, not bf16"):
        tune(replace(cfg, precision="bf16"))
    run(base)  # the same split, other seeds: accepted
    (row,) = [r for _, r in read_jsonl(base.out / "results.jsonl")]
    assert row["tuned"]["unit_seed"] == TUNING_SEEDS and row["status"] == "ok"
    assert row["tuned"]["precision"] == "fp32"


@plays_a_worker
def test_a_study_with_trials_of_unknown_split_is_not_tuned_on(tmp_path, cache_dir):
    cfg = _config(tmp_path / "tune", cache_dir, strategies=("scratch",), trials=1)
    (tmp_path / "tune").mkdir()
    study = optuna.create_study(storage=open_storage(storage_url(cfg), 30, 90),
                                study_name=study_name("smoke", "phantom-2d", "scratch"))
    old = study.ask()  # a trial an older version made, on seeds nobody recorded
    suggest_harness(old)
    study.tell(old, 50.0)
    with pytest.raises(BenchError, match="do not record their split"):
        tune(cfg)


def test_a_bad_storage_url_is_a_one_line_error(tmp_path, cache_dir):
    with pytest.raises(BenchError, match="cannot open Optuna storage"):
        tune(_config(tmp_path / "tune", cache_dir, storage="nosuchdb://x"))
    assert not (tmp_path / "tune").exists()


@plays_a_worker
def test_a_trial_whose_worker_stopped_beating_is_failed_and_run_again(tmp_path, cache_dir,
                                                                        monkeypatch):
    import bench.tuning.tune
    monkeypatch.setattr(bench.tuning.tune, "POLL_SECONDS", 0.2)
    cfg = _config(tmp_path / "tune", cache_dir, strategies=("scratch",), heartbeat=1)
    (tmp_path / "tune").mkdir()
    storage = open_storage(storage_url(cfg), 1, 3)
    study = optuna.create_study(storage=storage, study_name=study_name("smoke", "phantom-2d",
                                                                       "scratch"))
    lost = study.ask()  # a worker on another machine that beat once, then vanished
    suggest_harness(lost)
    lost.set_user_attr("worker", {"host": "elsewhere", "pid": 1})
    storage.record_heartbeat(lost._trial_id)

    (study,) = tune(replace(cfg, trials=2)).values()
    trials = study.get_trials(deepcopy=False)
    assert trials[0].state == TrialState.FAIL  # failed through its stale heartbeat ...
    retry = [t for t in trials if t.system_attrs.get("retry_history") == [lost.number]]
    assert len(retry) == 1 and retry[0].params == lost.params  # ... and run again as it was
    assert effort(study) | {"train_seconds": 0} == {
        "trials": 2, "complete": sum(t.state == TrialState.COMPLETE for t in trials[1:]),
        "pruned": sum(t.state == TrialState.PRUNED for t in trials[1:]), "fail": 0,
        "diverged": 0, "retried": 1, "train_seconds": 0}


@plays_a_worker
def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_run_again(tmp_path, cache_dir,
                                                                             monkeypatch):
    import bench.tuning.tune
    monkeypatch.setattr(bench.tuning.tune, "POLL_SECONDS", 0.2)
    cfg = _config(tmp_path / "tune", cache_dir, strategies=("scratch",), trials=1, heartbeat=1)
    (tmp_path / "tune").mkdir()
    study = optuna.create_study(storage=open_storage(storage_url(cfg), 1, 3),
                                study_name=study_name("smoke", "phantom-2d", "scratch"))
    orphan = study.ask()  # created, then its worker died: no heartbeat, no objective

    (study,) = tune(cfg).values()
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials][0] == TrialState.FAIL and len(trials) == 2
    assert trials[1].system_attrs["retry_history"] == [orphan.number]
    assert effort(study)["trials"] == 1 and effort(study)["retried"] == 1


def test_run_and_tune_share_the_unit_builder_without_importing_each_other():
    import subprocess
    import sys
    code = ("import sys, bench.tuning.tune, bench.unit; "
            "assert 'bench.run' not in sys.modules; "
            "assert bench.tuning.tune.build_unit is bench.unit.build_unit; "
            "import bench.run, bench.unit.lifecycle; "
            "assert bench.run.run_unit is bench.unit.lifecycle.run_unit; "
            "assert bench.unit.lifecycle.build_unit is bench.unit.build_unit")
    subprocess.run([sys.executable, "-c", code], check=True)
