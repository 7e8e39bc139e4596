"""`bench tune`: one Optuna study per (task, strategy), each with exactly the same number of
trials (Lucic et al. 2018 tuned every GAN with the same budget before comparing them).

A trial trains one unit with the profile's step budget and suggested hyper-parameters (the
harness's plus what the strategy's `search_space` declares) and returns its final domain FID
against the VALIDATION images: the test images never choose hyper-parameters. Every evaluation
is reported to the pruner. A diverged trial fails with its reason.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import TrialState

import datasets
import strategies
from bench.errors import BenchError
from bench.evaluation import Evaluator
from bench.pretext import PretextContext, get_pretext
from bench.run import build_networks, check_inputs, default_cache
from bench.train import train_unit

HARNESS = ("lr_g", "lr_d", "beta1", "r1_gamma", "ema_decay")
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
# A trial whose process died stops beating; after the grace period it is failed (and counted).
HEARTBEAT_SECONDS, GRACE_SECONDS = 30, 90


class Diverged(Exception):
    """A trial whose training produced non-finite losses or images."""


@dataclass
class TuneConfig:
    strategies: list[str]
    tasks: list[str]
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


def open_storage(url: str) -> optuna.storages.RDBStorage:
    try:
        with warnings.catch_warnings():  # heartbeats: "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_SECONDS,
                                              grace_period=GRACE_SECONDS)
    except Exception as err:  # bad URL, missing driver, unreachable server
        raise BenchError(f"cannot open Optuna storage {url!r} ({type(err).__name__}: {err}); "
                         "check the URL, e.g. sqlite:///tune.db") from None


def tune(cfg: TuneConfig) -> dict[str, optuna.Study]:
    if cfg.trials < 1:
        raise BenchError(f"--trials {cfg.trials}: need at least 1")
    device, specs, settings = check_inputs(cfg)
    if cfg.storage is None:  # the default SQLite file lives there
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
    storage = open_storage(storage_url(cfg))
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
            study = optuna.create_study(
                storage=storage, study_name=study_name(cfg.profile, spec.name, name),
                direction="minimize", load_if_exists=True,
                sampler=optuna.samplers.TPESampler(seed=cfg.seed),
                pruner=cfg.pruner or optuna.pruners.MedianPruner(n_warmup_steps=s.eval_every))
            with warnings.catch_warnings():  # "experimental" since Optuna 2.9, still there in 5
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            taken = len(study.get_trials(deepcopy=False, states=COUNTED + (TrialState.RUNNING,)))
            objective = _objective(name, data, s, evaluator, pretexts, cfg, device)
            study.optimize(objective, n_trials=max(0, cfg.trials - taken), catch=(Diverged,),
                           show_progress_bar=cfg.progress)
            studies[study.study_name] = study
    return studies


def _objective(name, data, s, evaluator, pretexts, cfg: TuneConfig, device):
    def objective(trial: optuna.Trial) -> float:
        suggest_harness(trial)
        strategy = strategies.get_strategy(name)
        strategy.search_space(trial)
        s_trial = apply_tuned(s, strategy, {"params": trial.params})
        G, D = build_networks(s_trial, cfg.seed)
        strategy.initialize(G, D, pretexts)

        def report(step: int, fid: float | None) -> None:
            if fid is None:
                return
            trial.report(fid, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step} (domain FID {fid:.4g})")

        result = train_unit(G, D, data, s_trial, cfg.seed, device, cfg.precision, evaluator,
                            progress=False, on_evaluate=report)
        trial.set_user_attr("train_seconds", round(result.train_seconds, 2))
        final = result.curve[-1]["fid"] if result.status == "ok" else None
        if final is None:
            reason = result.reason or "the final evaluation produced non-finite images"
            trial.set_user_attr("reason", reason)
            raise Diverged(reason)
        return final

    return objective


def effort(study: optuna.Study) -> dict:
    """Trials by state and the training time they took: the tuning effort of one study."""
    trials = study.get_trials(deepcopy=False)
    out = {state.name.lower(): sum(t.state == state for t in trials) for state in COUNTED}
    out["train_seconds"] = round(sum(t.user_attrs.get("train_seconds", 0.0) for t in trials), 1)
    return out


def public_url(url: str) -> str:
    """The storage URL without its password, for results and reports."""
    from sqlalchemy.engine import make_url
    return make_url(url).render_as_string(hide_password=True)


def load_tuned(url: str, profile: str, task: str, strategy: str) -> dict:
    """The best trial of one study, as `bench run --tuned` applies and records it."""
    name = study_name(profile, task, strategy)
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(url))
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
    strategy.configure({k: v for k, v in params.items() if k not in HARNESS})
    return dataclasses.replace(s, **{k: params[k] for k in HARNESS if k in params})
