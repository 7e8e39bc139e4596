"""Which trials of a study count towards its budget, and what to do with those of dead workers.

A trial whose worker died (SIGKILL, preemption, Ctrl-C) is failed and queued again with the
same parameters (Optuna's retry callback). The failed record is then *superseded*: the retry
stands for it, so it is neither counted nor shown as a failure. Every trial carries the user
attribute `slot` (the number of the first attempt), which names its checkpoint, and `worker`
(host, pid namespace and pid), which lets a rerun on the same machine fail its own dead trials at once
instead of waiting for their heartbeat to go stale.
"""

from __future__ import annotations

import copy
import os
import socket
from datetime import datetime

import optuna
from optuna.trial import FrozenTrial, TrialState

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def _pid_namespace() -> int | None:
    """Containers that share a host name keep separate pid spaces: a pid means nothing across."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def worker_id() -> dict:
    return {"host": socket.gethostname(), "pidns": _pid_namespace(), "pid": os.getpid()}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def died_here(trial: FrozenTrial) -> bool:
    """A running trial whose worker was on this machine and no longer exists."""
    worker = trial.user_attrs.get("worker") or {}
    here = {k: v for k, v in worker_id().items() if k != "pid"}
    return (trial.state == TrialState.RUNNING and "pid" in worker
            and all(worker.get(k) == v for k, v in here.items())
            and worker["pid"] != os.getpid() and not _pid_alive(int(worker["pid"])))


def never_started(trial: FrozenTrial, grace: float) -> bool:
    """A running trial that never reached its objective (its worker died right after creating
    it, before its first heartbeat, which Optuna's stale check needs)."""
    start = trial.datetime_start
    return (trial.state == TrialState.RUNNING and "worker" not in trial.user_attrs
            and start is not None and (datetime.now() - start).total_seconds() > grace)


def superseded(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of the failed attempts that a retry stands for."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def live(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that count: all but superseded attempts (waiting retries included)."""
    gone = superseded(trials)
    return [t for t in trials if t.number not in gone]


def retry_dead(study: optuna.Study, grace: float) -> None:
    """Fail and queue again the trials whose worker died: stale heartbeats (any machine), dead
    pids on this machine, and trials their own worker marked interrupted. Call under the lock."""
    optuna.storages.fail_stale_trials(study)
    storage = study._storage  # the public Study API has no per-trial state change
    retry = storage.get_heartbeat_stale_trial_callback()
    trials = study.get_trials(deepcopy=False)
    for t in live(trials):
        if died_here(t) or never_started(t, grace):
            storage.set_trial_user_attr(t._trial_id, "reason", "its worker process died")
            try:
                if not storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another worker got there first
        elif not (t.state == TrialState.FAIL and t.user_attrs.get("interrupted")):
            continue
        retry(study, copy.deepcopy(storage.get_trial(t._trial_id)))


def effort(study: optuna.Study) -> dict:
    """Counted trials by state, diverged ones, retried attempts and training time."""
    trials = study.get_trials(deepcopy=False)
    counted = [t for t in live(trials) if t.state in COUNTED]
    out = {"trials": len(counted)}
    out.update({state.name.lower(): sum(t.state == state for t in counted) for state in COUNTED})
    out["diverged"] = sum(bool(t.user_attrs.get("diverged")) for t in counted)
    out["retried"] = len(trials) - len(live(trials))
    out["train_seconds"] = round(sum(t.user_attrs.get("train_seconds", 0.0) for t in trials), 1)
    return out
