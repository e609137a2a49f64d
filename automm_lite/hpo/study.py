"""The Optuna study of a search: its storage (SQLite in the search folder, or a shared database with heartbeats),
the grid queue, which trials count, and a trial's heartbeat."""
from __future__ import annotations

import contextlib
import itertools
import random
import threading
import time
import warnings
from pathlib import Path

from ..exceptions import ConfigError

# A worker records a heartbeat every HEARTBEAT_S while its trial runs; a trial without one for 3 of them is failed
# by the next worker that asks for a trial, and retried once (shared databases only).
HEARTBEAT_S = 10
# SQLAlchemy's default driver of each database (psycopg 3 for PostgreSQL since SQLAlchemy 2.1) and our extra for it.
DRIVERS = {"postgresql": ("psycopg", "postgres"), "mysql": ("pymysql", None)}


SECRET_QUERY_KEYS = ("password", "passwd", "pwd", "sslpassword")


def safe_url(url: str) -> str:
    """The storage URL without its password, in the user part or in the query (``?password=...``)."""
    try:
        from sqlalchemy.engine.url import make_url

        parsed = make_url(url)
        query = {k: "***" if k.lower() in SECRET_QUERY_KEYS else v for k, v in parsed.query.items()}
        return parsed.set(query=query).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 (not a database URL: hide what follows a colon before @, and any query)
        head, at, tail = url.partition("?")[0].rpartition("@")
        return f"{head.split(':')[0]}:***@{tail}" if at else url.partition("?")[0]


def open_storage(storage, own_file: Path, heartbeat_s: int = HEARTBEAT_S):
    """The study's storage: ``own_file`` (SQLite) when ``storage`` is None; a database URL with heartbeats, so
    that a killed worker's trial is failed and retried once; an Optuna storage object as it is.

    Raises
    ------
    ConfigError
        A database that cannot be reached (its host named, never its password) or a missing driver.
    """
    import optuna

    if storage is None:
        return optuna.storages.RDBStorage(f"sqlite:///{own_file}")
    if not isinstance(storage, str):
        return storage
    scheme = storage.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme == "sqlite":
        return optuna.storages.RDBStorage(storage)
    module, extra = DRIVERS.get(scheme, (None, None))
    if module is not None and "+" not in storage.split(":", 1)[0]:
        try:
            __import__(module)
        except ImportError:
            hint = f"pip install 'automm_lite[{extra}]'" if extra else f"pip install {module}"
            raise ConfigError(f"storage {safe_url(storage)!r} needs the {module} driver: {hint}.") from None
    engine = {"pool_pre_ping": True}
    if scheme == "postgresql":
        engine["connect_args"] = {"connect_timeout": 10}
    for attempt in range(3):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                warnings.simplefilter("ignore", FutureWarning)
                return optuna.storages.RDBStorage(
                    storage, engine_kwargs=engine, heartbeat_interval=heartbeat_s, grace_period=3 * heartbeat_s,
                    heartbeat_stale_trial_callback=_retry_once())
        except Exception as error:  # noqa: BLE001 (SQLAlchemy's errors: the first line says why, never the URL)
            failure = error
            # Workers that start together on an empty database create Optuna's tables at once: one wins.
            racing = "already exists" in str(failure) or "duplicate key" in str(failure)
            if not racing or attempt == 2:
                break
            time.sleep(0.5 + random.random())
    reason = str(failure).strip().splitlines()[0] if str(failure).strip() else type(failure).__name__
    for secret in _secrets(storage):
        reason = reason.replace(secret, "***")
    raise ConfigError(f"Cannot open the study storage {safe_url(storage)!r}: {reason}. Check that the server runs "
                      "and the URL (postgresql://user:password@host:port/database).") from None


def _retry_once():
    """Optuna's callback that queues a stale trial's values again, once (renamed in Optuna 4.9)."""
    import optuna

    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or \
        optuna.storages.RetryFailedTrialCallback
    return retry(max_retry=1)


def _secrets(url: str) -> list:
    try:
        from sqlalchemy.engine.url import make_url

        parsed = make_url(url)
        found = [parsed.password] + [v for k, v in parsed.query.items() if k.lower() in SECRET_QUERY_KEYS]
        return [str(s) for s in found if s]
    except Exception:  # noqa: BLE001
        return []


class Heartbeat:
    """Records a trial's heartbeat every interval from a thread, between ``start()`` and ``stop()`` (or as a
    ``with`` block), where the storage has heartbeats (a shared database); does nothing elsewhere."""

    def __init__(self, study, trial):
        self.storage, self.trial_id = study._storage, trial._trial_id
        interval = getattr(self.storage, "get_heartbeat_interval", None)
        self.interval = interval() if interval is not None else None
        self._stop, self._thread = threading.Event(), None

    def start(self) -> "Heartbeat":
        if self.interval:
            self._thread = threading.Thread(target=self._beat, name="trial-heartbeat", daemon=True)
            self._thread.start()
        return self

    def _beat(self):
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # a lost connection: the next beat tries again
                self.storage.record_heartbeat(self.trial_id)
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 30)  # a beat stuck on a dead connection: left behind

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def fail_stale_trials(study) -> None:
    """Fail the trials of killed workers (no heartbeat for 3 intervals), which queues each for one retry."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def state_name(trial) -> str:
    """A trial's state in the results tables: ``complete``, ``pruned``, ``running``, ``failed`` (its error recorded)
    or ``interrupted`` (failed with no error recorded: its process was killed)."""
    state = trial.state.name.lower()
    if state == "fail":
        return "failed" if "error" in trial.user_attrs else "interrupted"
    return state


def ask(study):
    """The next trial (a queued one first), after failing the trials of killed workers."""
    fail_stale_trials(study)
    with warnings.catch_warnings():
        # Optuna prefers Study.optimize with heartbeats; Heartbeat below does for a trial what it does.
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        return study.ask()


def queue_grid(study, grid: dict) -> None:
    """Queue every grid point the study has not finished or queued yet, in the order of the choices (a failed or
    killed point again)."""
    import optuna

    states = optuna.trial.TrialState
    seen = {tuple(sorted(t.params.items())) for t in study.get_trials(deepcopy=False)
            if t.state in (states.COMPLETE, states.PRUNED, states.RUNNING)}
    # A queued trial has no params yet: its point is in the system attributes.
    seen |= {tuple(sorted(t.system_attrs.get("fixed_params", {}).items()))
             for t in study.get_trials(deepcopy=False, states=(states.WAITING,))}
    for values in itertools.product(*grid.values()):
        point = dict(zip(grid, values))
        if tuple(sorted(point.items())) not in seen:
            study.enqueue_trial(point)


def grid_size(grid: dict) -> int:
    size = 1
    for choices in grid.values():
        size *= len(choices)
    return size


def counted(study, run_id: str) -> int:
    """Trials that count towards the number asked for: finished and stopped ones, those other workers are
    running, and this run's failures (an earlier run's failures and killed trials are tried again)."""
    import optuna

    states = optuna.trial.TrialState
    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state in (states.COMPLETE, states.PRUNED)
               or (t.state == states.RUNNING and t.user_attrs.get("run") != run_id)
               or (t.state == states.FAIL and t.user_attrs.get("run") == run_id))
