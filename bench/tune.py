"""`bench tune`: one Optuna study per (task, strategy), each with exactly the same number of
trials (Lucic et al. 2018 tuned every GAN with the same budget before comparing them).

A trial trains one unit with the profile's step budget and suggested hyper-parameters (the
harness's plus what the strategy's `search_space` declares) and returns its final domain FID
against the VALIDATION images: the test images never choose hyper-parameters. Every evaluation
is reported to the pruner. A diverged trial fails with its reason. A trial checkpoints at every
evaluation; a trial whose worker died is queued again and resumes from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import optuna
from optuna.trial import TrialState
from tqdm.auto import tqdm

import datasets
import strategies
from bench.errors import BenchError
from bench.metrics.evaluation import Evaluator
from bench.pretext import PretextContext, get_pretext
from bench.nets import build_networks
from bench.run import check_inputs, default_cache
from bench.train import train_unit
from bench.trials import COUNTED, effort, live, retry_dead, worker_id
from bench.tune_storage import StudyLock, open_storage, public_url, warn_if_one_worker_only

HARNESS = ("lr_g", "lr_d", "beta1", "r1_gamma", "ema_decay")
# Harness settings a strategy's own search space may set (the rest of its parameters go to
# its `configure`).
SETTINGS = HARNESS + ("transfer_lr_scale",)
# A worker silent for GRACE_FACTOR heartbeats is dead to the others: its trial is queued again.
HEARTBEAT_SECONDS, GRACE_FACTOR = 30, 3
POLL_SECONDS = 5  # how often a worker with nothing left to claim looks at the others' trials


class Diverged(Exception):
    """A trial whose training produced non-finite losses or images."""


@dataclass
class TuneConfig:
    strategies: list[str]
    tasks: list  # built-in names, task .toml paths or TaskSpecs (`--source`)
    out: Path
    trials: int
    profile: str = "quick"
    storage: str | None = None  # any SQLAlchemy URL; default: SQLite in `out`
    device: str = "auto"
    precision: str = "bf16"
    cache_dir: Path = field(default_factory=default_cache)
    seed: int = 0
    progress: bool = True
    pruner: optuna.pruners.BasePruner | None = None  # default: median of earlier trials
    heartbeat: int = HEARTBEAT_SECONDS


def study_name(profile: str, task: str, strategy: str) -> str:
    return f"{profile}/{task}/{strategy}"


def suggest_harness(trial: optuna.Trial) -> dict:
    return {"lr_g": trial.suggest_float("lr_g", 1e-5, 1e-2, log=True),
            "lr_d": trial.suggest_float("lr_d", 1e-5, 1e-2, log=True),
            "beta1": trial.suggest_float("beta1", 0.0, 0.9),
            "r1_gamma": trial.suggest_float("r1_gamma", 1e-3, 10.0, log=True),
            "ema_decay": trial.suggest_categorical("ema_decay", [0.0, 0.9, 0.99, 0.999])}


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


def tune(cfg: TuneConfig) -> dict[str, optuna.Study]:
    """Every (task, strategy) study ends with exactly `cfg.trials` counted trials. Several
    workers may run this on one storage: each claims trials until every budget is taken, then
    waits for the others' trials to finish, taking over those whose worker died."""
    if cfg.trials < 1:
        raise BenchError(f"--trials {cfg.trials}: need at least 1")
    if cfg.heartbeat < 1:
        raise BenchError(f"--heartbeat {cfg.heartbeat}: need at least 1 second")
    device, specs, settings = check_inputs(cfg)
    if cfg.storage is None:  # the default SQLite file lives there
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
    url = storage_url(cfg)
    storage = open_storage(url, cfg.heartbeat, GRACE_FACTOR * cfg.heartbeat)
    warn_if_one_worker_only(url)
    studies = {}
    for spec in specs:
        s = settings[spec.name]
        data = datasets.build_task_data(spec, s.image_size, cfg.cache_dir, 0,
                                        splits=dict(s.splits) if s.splits else None,
                                        progress=cfg.progress)
        evaluator = Evaluator(data, s, device, cfg.precision, cfg.cache_dir, cfg.progress,
                              against="val", inception=False)
        ctx = PretextContext(data, s, 0, device, cfg.precision, cfg.progress)
        for name in cfg.strategies:
            pretexts = {n: get_pretext(n, ctx, cfg.cache_dir)
                        for n in strategies.get_strategy(name).needs}
            label = study_name(cfg.profile, spec.name, name)
            study = optuna.create_study(
                storage=storage, study_name=label, direction="minimize", load_if_exists=True,
                pruner=cfg.pruner or optuna.pruners.MedianPruner(n_warmup_steps=s.eval_every))
            _check_study_data(study, spec)
            lock = StudyLock(url, label)
            checkpoints = Path(cfg.out) / "checkpoints" / label.replace("/", "__")
            objective = _objective(name, data, s, evaluator, pretexts, cfg, device, lock,
                                   checkpoints)
            studies[label] = _Study(study, lock, objective, cfg.progress,
                                    GRACE_FACTOR * cfg.heartbeat)
    with warnings.catch_warnings():  # heartbeat helpers: "experimental" since Optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        _work(studies, cfg)
    return {label: item.study for label, item in studies.items()}


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


def _objective(name, data, s, evaluator, pretexts, cfg: TuneConfig, device, lock: StudyLock,
               checkpoints: Path):
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
        strategy = strategies.get_strategy(name)
        strategy.search_space(trial)
        s_trial = apply_tuned(s, strategy, {"params": trial.params})
        G, D = build_networks(s_trial, cfg.seed)
        transferred = strategy.initialize(G, D, pretexts)

        def report(step: int, fid: float | None) -> None:
            if fid is None:
                return
            trial.report(fid, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step} (domain FID {fid:.4g})")

        slot = trial.user_attrs["slot"]
        # Named by what it trains: a checkpoint left by another study, seed or profile under
        # the same --out never resumes this trial.
        key = json.dumps([trial.study.study_name, trial.params, cfg.seed,
                          dataclasses.asdict(s_trial)], sort_keys=True, default=str)
        checkpoint = checkpoints / f"trial-{slot}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.pt"
        checkpoints.mkdir(parents=True, exist_ok=True)
        try:
            result = train_unit(G, D, data, s_trial, cfg.seed, device, cfg.precision, evaluator,
                                checkpoint=checkpoint, progress=cfg.progress,
                                label=f"trial {slot}", on_evaluate=report,
                                transferred=transferred)
        except optuna.TrialPruned:
            checkpoint.unlink(missing_ok=True)
            raise
        checkpoint.unlink(missing_ok=True)  # the trial's outcome is decided
        trial.set_user_attr("train_seconds", round(result.train_seconds, 2))
        trial.set_user_attr("resumed_step", result.resumed_step)
        final = result.curve[-1]["fid"] if result.status == "ok" else None
        if final is None:
            reason = result.reason or "the final evaluation produced non-finite images"
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
            "value": best.value, "params": best.params, "effort": effort(study)}


def apply_tuned(s, strategy, tuned: dict):
    """Settings with the tuned harness values; the strategy configured with its own."""
    params = tuned["params"]
    strategy.configure({k: v for k, v in params.items() if k not in SETTINGS})
    return dataclasses.replace(s, **{k: params[k] for k in SETTINGS if k in params})
