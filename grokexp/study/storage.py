"""Where an Optuna study lives, how workers share it, and how a dead worker's trials come back.

Storage is a journal file (``*.log``, several processes on one machine) or any Optuna RDB URL
(``sqlite:///…``, ``postgresql://…``, ``mysql://…``). The study is created by exactly one
worker: ``create_new_study`` is atomic in every storage, so the worker that wins it is the one
that enqueues the known points and opens the MLflow parent run; the others load it.

Stale trials, the rule: every RUNNING trial of a live worker carries a heartbeat (the system
attr ``grokexp:heartbeat``, unix seconds) refreshed every ``heartbeat_s``. A RUNNING trial
whose last heartbeat (or start, if it has none) is older than ``grace_s`` belongs to a dead
worker: any worker fails it and enqueues its parameters again (``retry_of`` = its number).
Failing is a state change that only one worker can win, so a trial is re-queued once.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import GrokexpError
from ..tracking.redact import redact_uri
from ..tracking.retry import Backoff, retry
from ..tracking.tracker import sqlite_path

if TYPE_CHECKING:
    import optuna

__all__ = ["StorageError", "StorageTarget", "resolve_storage", "mask_password", "open_storage",
           "create_or_load_study", "trial_id", "Heartbeat", "fail_stale_trials",
           "HEARTBEAT_ATTR"]

HEARTBEAT_ATTR = "grokexp:heartbeat"
DEFAULT_JOURNAL = "optuna.log"


class StorageError(GrokexpError):
    """A storage the user named that cannot be used (bad URL, missing driver)."""

    exit_code = 2


def mask_password(url: str) -> str:
    """``postgresql://user:secret@host/db`` → ``postgresql://user:***@host/db``."""
    return redact_uri(url)


@dataclass(frozen=True)
class StorageTarget:
    """A resolved storage: a journal file path or an SQLAlchemy URL."""

    kind: str  # "journal" | "rdb"
    location: str

    @property
    def display(self) -> str:
        return mask_password(self.location)


def resolve_storage(option: str | None, tracking_uri: str) -> StorageTarget:
    """``--storage`` → target. Default: ``optuna.log`` beside an embedded MLflow store,
    else ``mlruns/optuna.log``. ``postgresql://`` gets the psycopg 3 driver."""
    if option is None:
        db = sqlite_path(tracking_uri)
        root = Path("mlruns") if db is None else db.parent
        return StorageTarget("journal", str(root / DEFAULT_JOURNAL))
    if "://" in option:
        scheme = option.split("://", 1)[0]
        if scheme in ("postgresql", "postgres"):
            option = "postgresql+psycopg://" + option.split("://", 1)[1]
        if not re.fullmatch(r"[a-z0-9]+(\+[a-z0-9_]+)?", scheme):
            raise StorageError(f"--storage {mask_password(option)}: not a database URL")
        return StorageTarget("rdb", option)
    if option.endswith(".log"):
        return StorageTarget("journal", option)
    raise StorageError(f"--storage {option}: expected a database URL (sqlite:///study.db, "
                       "postgresql://user@host/db) or a journal file ending in .log")


def _check_driver(url: str) -> None:
    if url.startswith("postgresql+psycopg://"):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise StorageError(f"--storage {mask_password(url)}: PostgreSQL needs the psycopg "
                               "3 driver: pip install 'grokexp[postgres]'") from None


def _uninterrupted_journal(path: str) -> Any:
    """A journal file whose appends a signal cannot cut in half.

    Optuna's file lock is released by renaming and unlinking a file; a Ctrl-C or SIGTERM
    raised between the two (our SIGTERM raises where the main thread is) broke the release
    and the clean-up that requeues the trial. SIGINT and SIGTERM are held for the append
    and delivered right after it (``tracking/interrupts.py``, as for the MLflow writes)."""
    from optuna.storages.journal import JournalFileBackend

    from ..tracking.interrupts import signals_held

    class Backend(JournalFileBackend):
        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            with signals_held():
                super().append_logs(logs)

    return Backend(path)


def open_storage(target: StorageTarget) -> optuna.storages.BaseStorage:
    """The Optuna storage object. Table creation is retried (5 tries, 0.5 → 4 s apart, the
    policy of tracking/retry.py): racing workers may collide. A missing driver or a bad URL
    (ImportError, ValueError) is not retried."""
    import optuna

    if target.kind == "journal":
        Path(target.location).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(_uninterrupted_journal(target.location))
    _check_driver(target.location)
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if target.location.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
    try:
        return retry(lambda: optuna.storages.RDBStorage(target.location,
                                                        engine_kwargs=engine_kwargs),
                     Backoff(first_s=0.5, cap_s=4.0, attempts=5),
                     retry_on=lambda err: not isinstance(err, (ImportError, ValueError)))
    except Exception as err:  # SQLAlchemy's errors differ by dialect
        raise StorageError(f"--storage {target.display}: {str(err).splitlines()[0]}"
                           ) from None


def create_or_load_study(storage: optuna.storages.BaseStorage, name: str, sampler: Any,
                         pruner: Any) -> tuple[optuna.Study, bool]:
    """(study, created): ``created`` is true for exactly one worker of a study."""
    import optuna

    try:
        study = optuna.create_study(storage=storage, study_name=name, sampler=sampler,
                                    pruner=pruner, direction="minimize")
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler,
                                  pruner=pruner)
    if study.direction != optuna.study.StudyDirection.MINIMIZE:
        raise StorageError(f"study {name!r} exists and does not minimise")
    return study, False


def trial_id(storage: optuna.storages.BaseStorage, study_name: str, number: int) -> int:
    """The storage's id of trial ``number`` of a study, by the public lookups of Optuna's
    ``BaseStorage`` (a ``Trial``'s own id is private): ``storage`` is the one
    :func:`open_storage` made."""
    study_id = storage.get_study_id_from_name(study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


class Heartbeat:
    """A daemon thread that refreshes the heartbeat of this worker's RUNNING trials (of the
    study ``study_name`` in ``storage``), each named by its number."""

    def __init__(self, storage: optuna.storages.BaseStorage, study_name: str,
                 interval_s: float):
        self.storage, self.study_name, self.interval_s = storage, study_name, interval_s
        self._ids: dict[int, int] = {}  # number -> the storage's trial id
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="grokexp-heartbeat",
                                        daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5 * self.interval_s + 5)

    def add(self, number: int) -> None:
        with self._lock:
            self._ids[number] = trial_id(self.storage, self.study_name, number)
        self.beat(number)

    def remove(self, number: int) -> None:
        with self._lock:
            self._ids.pop(number, None)

    def beat(self, number: int) -> None:
        import optuna

        with self._lock:
            found = self._ids.get(number)
        if found is None:
            return
        try:
            self.storage.set_trial_system_attr(found, HEARTBEAT_ATTR, time.time())
        except (optuna.exceptions.UpdateFinishedTrialError, KeyError):
            self.remove(number)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._lock:
                numbers = list(self._ids)
            for number in numbers:
                try:
                    self.beat(number)
                except Exception:  # a transient storage error must not kill the worker
                    pass


def fail_stale_trials(study: optuna.Study, storage: optuna.storages.BaseStorage,
                      grace_s: float) -> list[tuple[int, dict[str, Any]]]:
    """Fail RUNNING trials whose heartbeat is older than ``grace_s`` and enqueue them again;
    ``storage`` is the study's, as :func:`open_storage` made it.

    Returns (number, user_attrs) of each trial this worker failed, so the caller can close
    what else belonged to it (its MLflow run).
    """
    import optuna
    from optuna.trial import TrialState

    now = time.time()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        started = trial.datetime_start.timestamp() if trial.datetime_start else now
        beat = float(trial.system_attrs.get(HEARTBEAT_ATTR, started))
        if now - beat <= grace_s:
            continue
        try:
            stale = trial_id(storage, study.study_name, trial.number)
            storage.set_trial_user_attr(stale, "stale", True)
            won = storage.set_trial_state_values(stale, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        if not won:
            continue
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        failed.append((trial.number, dict(trial.user_attrs)))
    return failed
