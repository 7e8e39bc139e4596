"""The Optuna storage of `bench tune` and the lock that makes its per-study trial cap exact.

Optuna numbers trials atomically but has no "at most N trials" across processes: workers that
each check the count and then ask for a trial overshoot. So a worker takes a lock, counts, and
creates its trial before releasing it. The lock lives where the workers meet: a file lock beside
a SQLite database (one machine), a PostgreSQL advisory lock (many machines; the server drops it
when a killed worker's connection closes).
"""

from __future__ import annotations

import fcntl
import hashlib
import threading
import warnings
from pathlib import Path

import optuna
import sqlalchemy
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from ground.errors import BenchError

# After this many killed attempts a trial stays failed (and counts): it may be what kills workers.
MAX_RETRY = 3


def open_storage(url: str, heartbeat: int, grace: int) -> optuna.storages.RDBStorage:
    """Heartbeats let any worker fail the trials of a worker that died; each such trial is then
    queued again with its parameters, so the study still ends with its N trials."""
    try:
        # Workers starting together would each create Optuna's tables: one does, under the lock.
        with StudyLock(url, "optuna tables"), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
            return optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat,
                                              grace_period=grace,
                                              heartbeat_stale_trial_callback=retry)
    except Exception as err:  # bad URL, missing driver, unreachable server
        hint = (" (pip install 'gan-init-bench[postgres]')"
                if isinstance(err, ModuleNotFoundError) else "")
        raise BenchError(f"cannot open Optuna storage {public_url(url)!r} "
                         f"({type(err).__name__}: {err}){hint}; check the URL, "
                         "e.g. sqlite:///tune.db") from None


def public_url(url: str) -> str:
    """The storage URL without its password, for results and reports."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: nothing to hide
        return url


def warn_if_one_worker_only(url: str) -> None:
    dialect = make_url(url).get_backend_name()
    if dialect not in ("sqlite", "postgresql"):
        warnings.warn(f"{dialect} storage: the trial cap is exact for one worker at a time; "
                      "several workers need sqlite (one machine) or postgresql")


class StudyLock:
    """Mutual exclusion between the workers of one storage while one of them claims a trial.

    `release` is idempotent: the claim is released as soon as the trial exists, and once more
    (a no-op) after it, whatever happened in between.
    """

    def __init__(self, url: str, study: str):
        self._url, self._dialect = make_url(url), make_url(url).get_backend_name()
        self._key = int.from_bytes(hashlib.sha256(study.encode()).digest()[:8], "big",
                                   signed=True)
        self._held = None
        if self._dialect == "postgresql":
            # Autocommit: a session lock needs no transaction, and one left idle open could be
            # ended by the server's idle-in-transaction timeout, dropping the lock. Keepalives:
            # a worker machine that vanishes without closing its connection frees the lock in
            # about a minute instead of the system's two hours.
            alive = ({"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
                      "keepalives_count": 3} if self._url.get_driver_name() == "psycopg2" else {})
            self._engine = sqlalchemy.create_engine(self._url, poolclass=NullPool,
                                                    isolation_level="AUTOCOMMIT",
                                                    connect_args=alive)

    def acquire(self) -> "StudyLock":
        if self._dialect == "sqlite" and self._url.database not in (None, "", ":memory:"):
            handle = open(f"{Path(self._url.database).resolve()}.lock", "a")
            fcntl.flock(handle, fcntl.LOCK_EX)
            self._held = handle
        elif self._dialect == "postgresql":
            conn = self._engine.connect()
            try:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
            except BaseException:
                conn.close()
                raise
            self._held = conn
        else:  # in-memory SQLite or another database: one process
            self._held = _LOCAL.acquire() and _LOCAL
        return self

    def release(self) -> None:
        held, self._held = self._held, None
        if held is None:
            return
        if self._dialect == "postgresql":
            try:
                held.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
            finally:
                held.close()  # closing the session releases its locks in any case
        elif held is _LOCAL:
            _LOCAL.release()
        else:
            fcntl.flock(held, fcntl.LOCK_UN)
            held.close()

    def __enter__(self) -> "StudyLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


_LOCAL = threading.Lock()
