"""`bench tune`: one Optuna study per (task, strategy), each with exactly the same number of
trials (Lucic et al. 2018 tuned every GAN with the same budget before comparing them).

A trial trains one unit (built by bench.unit, as `bench run` builds its units) with the
profile's step budget and suggested hyper-parameters (the harness's plus what the strategy's
`search_space` declares) and returns its final domain FID against the VALIDATION images: the
test images never choose hyper-parameters. Trials train with network, noise and pretext seeds
from TUNING_SEEDS on, never with the seeds `bench run --tuned` evaluates; the study records
them and its data split, and a tuned run on another split is refused. Every evaluation
is reported to the pruner. A diverged trial fails with its reason. A trial checkpoints at every
evaluation; a trial whose worker died is queued again and resumes from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import optuna
import torch
from optuna.trial import TrialState
from tqdm.auto import tqdm

import strategies
from bench.config import UnitsConfig
from bench.tuning.storage import StudyLock, open_storage, public_url, warn_if_one_worker_only
from bench.tuning.trials import COUNTED, effort, live, retry_dead, worker_id
from bench.variants import plan_variants
from bench.unit import (HARNESS, SETTINGS, TUNING_SEEDS, apply_tuned, build_unit, check_inputs,
                        final_fid, prepare_task, split_identity, suggest_harness,
                        train)
from ground.errors import BenchError

__all__ = ["HARNESS", "SETTINGS", "TuneConfig", "tune", "load_tuned", "check_tuned",
           "apply_tuned", "study_name", "suggest_harness", "storage_url", "effort"]
# A worker silent for GRACE_FACTOR heartbeats is dead to the others: its trial is queued again.
HEARTBEAT_SECONDS, GRACE_FACTOR = 30, 3
POLL_SECONDS = 5  # how often a worker with nothing left to claim looks at the others' trials


class Diverged(Exception):
    """A trial whose training produced non-finite losses or images."""


@dataclass(kw_only=True)
class TuneConfig(UnitsConfig):
    trials: int
    storage: str | None = None  # any SQLAlchemy URL; default: SQLite in `out`
    seed: int = 0  # the sampler's; trials train with network and noise seed TUNING_SEEDS + seed
    pretext_seed: int = TUNING_SEEDS  # disjoint from bench run's pretext seeds 0..N-1
    pruner: optuna.pruners.BasePruner | None = None  # default: median of earlier trials
    heartbeat: int = HEARTBEAT_SECONDS


def study_name(profile: str, task: str, strategy: str) -> str:
    return f"{profile}/{task}/{strategy}"


def storage_url(cfg: TuneConfig) -> str:
    return cfg.storage or f"sqlite:///{(Path(cfg.out) / 'tune.db').resolve()}"


def _sampler(seed: int, index: int) -> optuna.samplers.TPESampler:
    """Seeded by the trial's index, so a resumed study draws what an uninterrupted one would
    have drawn instead of restarting the sampler's random stream in a new process."""
    state = np.random.SeedSequence([seed, index]).generate_state(1)[0]
    return optuna.samplers.TPESampler(seed=int(state))


@dataclass
class _Study:
    """One (task, strategy) study and what its trials need."""
    study: optuna.Study
    lock: StudyLock
    objective: Callable
    progress: bool
    grace: float  # seconds without a heartbeat after which a worker is dead
    bar: tqdm | None = None

    def claim(self, trials: int, seed: int) -> str:
        """"run": the lock is held and a trial may be created (its objective releases the
        lock); "wait": the budget is taken but other workers' trials still run; "done"."""
        self.lock.acquire()
        try:
            retry_dead(self.study, self.grace)
            counted = live(self.study.get_trials(deepcopy=False))
        except BaseException:
            self.lock.release()
            raise
        waiting = sum(t.state == TrialState.WAITING for t in counted)
        if len(counted) > trials:
            warnings.warn(f"{self.study.study_name} already holds {len(counted)} trials, more "
                          f"than --trials {trials}: compare studies with equal counts")
        if self.bar is None:
            self.bar = tqdm(total=trials, desc=self.study.study_name, unit="trial",
                            disable=not self.progress)
        self.bar.n = sum(t.state in COUNTED for t in counted)
        self.bar.refresh()
        if waiting or len(counted) < trials:
            self.study.sampler = _sampler(seed, len(counted) - waiting)
            return "run"
        self.lock.release()
        running = sum(t.state == TrialState.RUNNING for t in counted)
        self.bar.set_postfix_str(f"waiting for {running} running elsewhere" if running else "")
        return "wait" if running else "done"


def check_config(cfg: TuneConfig) -> tuple:
    """(device, specs, settings), every input checked, nothing written."""
    if cfg.trials < 1:
        raise BenchError(f"--trials {cfg.trials}: need at least 1")
    if cfg.heartbeat < 1:
        raise BenchError(f"--heartbeat {cfg.heartbeat}: need at least 1 second")
    if cfg.threads is not None and cfg.threads < 1:
        raise BenchError(f"--threads {cfg.threads}: need at least 1")
    return check_inputs(cfg)


def study_names(cfg: TuneConfig, specs) -> list[str]:
    """Every (task variant, strategy) study of the config, in the order `tune` runs them."""
    return [study_name(cfg.profile, variant.name, name)
            for variant in plan_variants(specs, cfg.train_subjects, cfg.pretext_scales)
            for name in cfg.strategies if strategies.applies(name, variant.dims)]


def load_studies(cfg: TuneConfig) -> dict[str, optuna.Study]:
    """The studies as the storage holds them (after a launcher's workers), nothing run."""
    _, specs, _ = check_config(dataclasses.replace(cfg, device="cpu"))
    url = storage_url(cfg)
    return {name: optuna.load_study(study_name=name, storage=url)
            for name in study_names(cfg, specs)}


def tune(cfg: TuneConfig) -> dict[str, optuna.Study]:
    """Every (task, strategy) study ends with exactly `cfg.trials` counted trials. Several
    workers may run this on one storage: each claims trials until every budget is taken, then
    waits for the others' trials to finish, taking over those whose worker died."""
    device, specs, settings = check_config(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.storage is None:  # the default SQLite file lives there
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
    url = storage_url(cfg)
    storage = open_storage(url, cfg.heartbeat, GRACE_FACTOR * cfg.heartbeat)
    warn_if_one_worker_only(url)
    studies = {}
    for variant in plan_variants(specs, cfg.train_subjects, cfg.pretext_scales):
        spec = variant.spec
        # Validation images score the trials: the test images never choose hyper-parameters.
        task = prepare_task(variant, settings[spec.name], device, cfg.precision, cfg.cache_dir,
                            cfg.data_seed, cfg.progress, against="val", inception=False)
        s = task.s
        for name in filter(lambda n: strategies.applies(n, spec.dims), cfg.strategies):
            task.pretexts.get(strategies.get_strategy(name).needs, cfg.pretext_seed)  # fail early
            label = study_name(cfg.profile, variant.name, name)
            study = optuna.create_study(
                storage=storage, study_name=label, direction="minimize", load_if_exists=True,
                pruner=cfg.pruner or optuna.pruners.MedianPruner(n_warmup_steps=s.eval_every))
            _check_study_data(study, spec)
            _record_split(study, task.data, cfg, task.precision)
            if not study.get_trials(deepcopy=False):
                # The profile's own values are a new study's first trial: the study measures
                # them beside what it draws, so its best is never worse than the default.
                study.enqueue_trial(profile_values(s, name), user_attrs={"profile_values": True})
            lock = StudyLock(url, label)
            checkpoints = Path(cfg.out) / "checkpoints" / label.replace("/", "__")
            objective = _objective(name, task, cfg, lock, checkpoints)
            studies[label] = _Study(study, lock, objective, cfg.progress,
                                    GRACE_FACTOR * cfg.heartbeat)
    with warnings.catch_warnings():  # heartbeat helpers: "experimental" since Optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        _work(studies, cfg)
    return {label: item.study for label, item in studies.items()}


def profile_values(s, strategy: str) -> dict:
    """The values settings `s` give the search space's parameters (the harness's, and those of
    the strategy's own that are harness settings, such as transfer_lr_scale)."""
    trial = optuna.trial.FixedTrial(s.as_dict())
    suggest_harness(trial)
    try:
        strategies.get_strategy(strategy).search_space(trial)
    except ValueError:  # a parameter the settings do not hold: the sampler draws it
        pass
    return trial.params


def _check_study_data(study: optuna.Study, spec) -> None:
    """A study of a real task belongs to the scans it started on: other or edited scans under
    the same task name would mix trials measured on different data."""
    from datasets.real import source_identity
    ident = source_identity(spec)
    recorded = study.user_attrs.get("data")
    if recorded is None and ident is not None:
        study.set_user_attr("data", ident)
    elif recorded != ident:
        raise BenchError(f"study {study.study_name} was tuned on other data ({recorded}, now "
                         f"{ident}); use another --storage, or a task file with its own name")


def _record_split(study: optuna.Study, data, cfg: TuneConfig, precision: str) -> None:
    """The split, seeds, recipe and precision a study tunes with, recorded on its first run and
    then held to: a study mixing trials of two splits or seed sets would choose from
    incomparable values."""
    record = {"split": split_identity(data), "unit_seed": TUNING_SEEDS + cfg.seed,
              "pretext_seed": cfg.pretext_seed, "recipe": cfg.recipe, "precision": precision}
    finished = [t for t in study.get_trials(deepcopy=False)
                if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    if "recipe" not in study.user_attrs and finished:
        study.set_user_attr("recipe", "plain")  # trials from before recipes existed
    if "precision" not in study.user_attrs and finished:
        study.set_user_attr("precision", "bf16")  # the default before `auto` existed
    if "split" not in study.user_attrs and finished:
        # Their values were measured on unknown seeds and split (an older version): a tuned
        # run could not tell whether they overlap its own. Unfinished ones simply run again.
        raise BenchError(f"study {study.study_name} holds finished trials that do not record "
                         "their split and seeds (an older version made them): tune again with "
                         "another --storage")
    for key, value in record.items():
        old = study.user_attrs.get(key)
        if old is None:
            study.set_user_attr(key, value)
        elif old != value:
            what = {"split": "data split (--data-seed)", "unit_seed": "trial seed (--seed)",
                    "pretext_seed": "pretext seed (--pretext-seed)",
                    "recipe": "training recipe (--recipe)",
                    "precision": "precision (--precision; auto chooses per machine)"}[key]
            shown = (lambda v: v["data_seed"]) if key == "split" else (lambda v: v)
            raise BenchError(f"study {study.study_name} was tuned with another {what}: "
                             f"{shown(old)}, not {shown(value)}; use the same value or another "
                             "--storage")


def _work(studies: dict[str, _Study], cfg: TuneConfig) -> None:
    done: set[str] = set()
    while len(done) < len(studies):
        ran = False
        for label, item in studies.items():
            while label not in done:
                verdict = item.claim(cfg.trials, cfg.seed)
                if verdict == "wait":
                    break
                if verdict == "done":
                    done.add(label)
                    item.bar.close()
                    break
                try:
                    item.study.optimize(item.objective, n_trials=1, catch=(Diverged,))
                finally:
                    item.lock.release()  # in case the trial failed before its objective ran
                ran = True
        if not ran and len(done) < len(studies):
            time.sleep(POLL_SECONDS)


def _objective(name: str, task, cfg: TuneConfig, lock: StudyLock, checkpoints: Path):
    def objective(trial: optuna.Trial) -> float:
        # A retry inherits its failed attempt's attributes: replace them before other workers
        # (free once the lock is released) can mistake this trial for the dead one.
        trial.set_user_attr("slot", trial.user_attrs.get("slot", trial.number))
        trial.set_user_attr("worker", worker_id())
        for key, value in (("interrupted", False), ("reason", None), ("diverged", False)):
            trial.set_user_attr(key, value)
        lock.release()  # the trial exists and is ours: other workers may claim theirs
        try:
            return train_trial(trial)
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)  # a rerun resumes it instead of counting it
            raise

    def train_trial(trial: optuna.Trial) -> float:
        suggest_harness(trial)
        strategies.get_strategy(name).search_space(trial)
        seed = TUNING_SEEDS + cfg.seed
        unit = build_unit(task, name, seed, cfg.pretext_seed, {"params": trial.params})

        def report(step: int, fid: float | None) -> None:
            if fid is None:
                return
            trial.report(fid, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step} (domain FID {fid:.4g})")

        slot = trial.user_attrs["slot"]
        # Named by what it trains: a checkpoint left by another study, seed or profile under
        # the same --out never resumes this trial.
        key = json.dumps([trial.study.study_name, trial.params, seed, cfg.pretext_seed,
                          dataclasses.asdict(unit.s), task.precision], sort_keys=True,
                         default=str)
        checkpoint = checkpoints / f"trial-{slot}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.pt"
        checkpoints.mkdir(parents=True, exist_ok=True)
        try:
            result = train(task, unit, checkpoint, f"trial {slot}", on_evaluate=report)
        except optuna.TrialPruned:
            checkpoint.unlink(missing_ok=True)
            raise
        checkpoint.unlink(missing_ok=True)  # the trial's outcome is decided
        trial.set_user_attr("train_seconds", round(result.train_seconds, 2))
        trial.set_user_attr("resumed_step", result.resumed_step)
        final, reason = final_fid(result)
        if final is None:
            trial.set_user_attr("reason", reason)
            trial.set_user_attr("diverged", True)
            raise Diverged(reason)
        return final

    return objective


def load_tuned(url: str, profile: str, task: str, strategy: str) -> dict:
    """The best trial of one study, as `bench run --tuned` applies and records it."""
    name = study_name(profile, task, strategy)
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(url, HEARTBEAT_SECONDS,
                                                                   GRACE_FACTOR * HEARTBEAT_SECONDS))
    except KeyError:
        raise BenchError(f"no study {name} in {public_url(url)}: run `bench tune` with the same "
                         "--profile, --task and --strategy first") from None
    try:
        best = study.best_trial
    except ValueError:
        raise BenchError(f"study {name} has no complete trial yet: run `bench tune` with more "
                         "--trials") from None
    return {"storage": public_url(url), "study": name, "trial": best.number,
            "value": best.value, "params": best.params, "effort": effort(study),
            **{k: study.user_attrs.get(k) for k in ("split", "unit_seed", "pretext_seed")},
            "recipe": study.user_attrs.get("recipe", "plain"),
            "precision": study.user_attrs.get("precision", "bf16")}


def check_tuned(tuned: dict, data, cfg) -> None:
    """A tuned run (`cfg`: a RunConfig) must split the data as its study did, and evaluate on
    seeds and pretexts other than those its trials trained with."""
    split, study = tuned.get("split"), tuned["study"]
    if split is None:
        raise BenchError(f"study {study} does not record the data split it was tuned on (an "
                         "older version made it): run `bench tune` again with another --storage")
    if split["fingerprint"] != data.fingerprint:
        raise BenchError(
            f"study {study} was tuned on the split of data seed {split['data_seed']} (data "
            f"{split['fingerprint']}), but this run splits with --data-seed {cfg.data_seed} "
            f"(data {data.fingerprint}): this run's test subjects could have chosen its "
            f"hyper-parameters; run with --data-seed {split['data_seed']} or tune with "
            f"--data-seed {cfg.data_seed}")
    if tuned["recipe"] != cfg.recipe:
        raise BenchError(f"study {study} was tuned with the {tuned['recipe']} recipe, not "
                         f"{cfg.recipe}: its values would be applied to another training loop; "
                         f"run with --recipe {tuned['recipe']} or tune with --recipe {cfg.recipe}")
    seeds = set(range(cfg.seeds))
    pretexts = seeds if cfg.pretext_seed is None else {cfg.pretext_seed}
    if tuned["unit_seed"] in seeds or tuned["pretext_seed"] in pretexts:
        raise BenchError(f"study {study} trained its trials with seed {tuned['unit_seed']} and "
                         f"pretext seed {tuned['pretext_seed']}, which this run would evaluate "
                         "on: use fewer --seeds or another --pretext-seed")
