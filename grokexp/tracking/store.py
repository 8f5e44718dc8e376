"""Checks on a tracking store before anything is trained: reachable, writable, not locked;
and the one door through which grokexp opens an MLflow store (:func:`open_client`).

Each problem becomes one line naming the store (password masked) and what is wrong, so that
``grokexp run`` fails in a second instead of after an hour of training.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import GrokexpError
from .redact import redact_uri
from .retry import Backoff, retry
from .tracker import sqlite_path, store_scheme

__all__ = ["check_store", "open_client", "schema_lock_path", "store_error"]

_DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "postgres": 5432,
                  "mysql": 3306, "mssql": 1433}


def store_error(tracking_uri: str, detail: str) -> GrokexpError:
    """The one shape of a store failure: the URI without its password, then what went wrong."""
    return GrokexpError(f"tracking store {redact_uri(tracking_uri)}: {detail}")


def check_store(uri: str, timeout_s: float = 2.0) -> None:
    """Raise a one-line :class:`GrokexpError` when the store at ``uri`` cannot take a run."""
    shown = redact_uri(uri)
    scheme = store_scheme(uri)
    if scheme == "sqlite":
        problem = _sqlite_problem(uri, timeout_s)
    elif scheme in _DEFAULT_PORTS:
        problem = _network_problem(uri, scheme, timeout_s)
    else:
        problem = None
    if problem:
        raise GrokexpError(f"tracking store {shown}: {problem}")


def _writable_dir(folder: Path) -> str | None:
    if folder.exists() and not folder.is_dir():
        return f"{folder} is not a directory"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".grokexp-probe-"):
            pass
    except OSError as err:
        return f"directory {folder} is not writable ({err.strerror or err})"
    return None


def _sqlite_problem(uri: str, timeout_s: float) -> str | None:
    db = sqlite_path(uri)
    if db is None:
        return "expected sqlite:///PATH"
    problem = _writable_dir(db.parent) or _writable_dir(db.parent / "artifacts")
    if problem or not db.exists():
        return problem
    if not os.access(db, os.R_OK | os.W_OK):
        return f"database {db} is read-only"
    try:
        connection = sqlite3.connect(f"file:{db}?mode=rw", uri=True, timeout=timeout_s)
    except sqlite3.Error as err:
        return f"cannot open database {db} ({err})"
    try:
        connection.execute("BEGIN IMMEDIATE")  # takes the write lock, as a real write would
        connection.execute("ROLLBACK")
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as err:
        if "locked" in str(err) or "busy" in str(err):
            return (f"database {db} is locked by another process "
                    f"(still locked after {timeout_s:g} s)")
        if "readonly" in str(err) or "read-only" in str(err):
            return f"database {db} is read-only"
        return f"database {db}: {err}"
    except sqlite3.DatabaseError as err:
        return f"{db} is not an SQLite database ({err})"
    finally:
        connection.close()
    return None


def _host_port(uri: str, scheme: str) -> tuple[str | None, int]:
    """The host and port a URL names, read as its client reads it: SQLAlchemy's rule for a
    database (the password runs to the first ``@``, and may hold ``/``), else the URL's."""
    if scheme in ("http", "https"):
        parts = urlsplit(uri)
        return parts.hostname, parts.port or _DEFAULT_PORTS[scheme]
    from sqlalchemy.engine import make_url

    url = make_url(uri)
    return url.host, url.port or _DEFAULT_PORTS[scheme]


def _network_problem(uri: str, scheme: str, timeout_s: float) -> str | None:
    try:
        host, port = _host_port(uri, scheme)
    except Exception:  # ValueError, SQLAlchemy's ArgumentError: their text may quote a password
        return "not a valid URL (its host or port cannot be read)"
    if not host:
        return None  # e.g. a unix socket: let the driver decide
    if "@" in host:  # the client reads the password to the first '@': the rest is no host
        return ("the host cannot be read: the password holds '@', which the URL must write "
                "as %40")
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except OSError as err:
        reason = err.strerror or type(err).__name__
        return f"cannot reach {host}:{port} ({reason})"


# --- opening a store: MLflow creates (and migrates) its schema on first use --------------

# Messages of a schema set-up that lost a race with another process's: a table, column or
# row (the Default experiment) the other one made first, or a schema it has not finished
# migrating. Not "database is locked": sqlite has waited its busy timeout already.
_SCHEMA_RACE = ("already exists", "duplicate", "uniqueviolation", "unique constraint failed")
_MIGRATING = "out-of-date database schema"
_DB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mssql")


def schema_lock_path(uri: str) -> Path | None:
    """The lock file beside a sqlite store's database, or None for other stores."""
    db = sqlite_path(uri)
    if db is None or not db.name or str(db) == ":memory:":
        return None
    return db.parent / f".{db.name}.lock"


def open_client(uri: str, timeout_s: float = 120.0) -> Any:
    """An ``MlflowClient`` over ``uri`` whose store has its schema, safe across processes.

    MLflow creates and migrates a database's schema the first time a client opens it; two
    processes doing so at once crash one another (``table experiments already exists``). For a
    sqlite store the first open holds an exclusive ``flock`` on a lock file beside the
    database, so one process builds the schema and the others wait for it, then find it
    made. Any database store (PostgreSQL, MySQL...) also retries, until ``timeout_s``, an
    open that failed the way a lost race fails. Raises a one-line :class:`GrokexpError` when
    the lock stays held for ``timeout_s``, when the store's schema is from another MLflow
    version, or when the store cannot be opened at all.
    """
    import logging

    from mlflow.tracking import MlflowClient

    for noisy in ("mlflow.store.db.utils", "alembic"):  # schema set-up chatter
        logging.getLogger(noisy).setLevel(logging.WARNING)
    scheme = store_scheme(uri)
    try:
        if scheme not in _DB_SCHEMES:
            return MlflowClient(tracking_uri=uri)  # a server or a file store: no schema here
        with _schema_lock(uri, timeout_s):
            return _retry_schema_race(lambda: MlflowClient(tracking_uri=uri), timeout_s)
    except GrokexpError:
        raise
    except Exception as err:  # sqlalchemy's and MLflow's own types vary by backend
        text = str(err).strip()
        problem = _schema_problem(text) or (text.splitlines() or [type(err).__name__])[0]
        raise GrokexpError(f"tracking store {redact_uri(uri)}: {redact_uri(problem)}") from None


_FOUND_VERSION = re.compile(r"found version (?P<found>\S+?),? but expected (?P<head>\w+)")


def _schema_problem(text: str) -> str | None:
    """The one line for a database whose schema this MLflow does not have, else None."""
    import mlflow

    match = _FOUND_VERSION.search(text)
    if _MIGRATING not in text.lower() or match is None:
        return None
    found, head = match["found"], match["head"]
    if not _known_revision(found):
        return (f"its schema (revision {found}) is from another MLflow version than this "
                f"one ({mlflow.__version__}, revision {head}): open it with the MLflow that "
                "made it, or use another store")
    return (f"its schema (revision {found}) is from an older MLflow than this one "
            f"({mlflow.__version__}, revision {head}): back it up, then run "
            "'mlflow db upgrade <URI>'")


def _known_revision(revision: str) -> bool:
    """Whether this MLflow's migrations know ``revision`` (an older schema than its own)."""
    try:
        import mlflow.store.db_migrations as migrations
        from alembic.script import ScriptDirectory

        script = ScriptDirectory(os.path.dirname(migrations.__file__))
        return script.get_revision(revision) is not None
    except Exception:  # alembic's CommandError, or a revision id it cannot parse
        return False


@contextlib.contextmanager
def _schema_lock(uri: str, timeout_s: float) -> Iterator[None]:
    lock = schema_lock_path(uri)
    if lock is None:
        yield
        return
    try:
        import fcntl
    except ImportError:  # not POSIX: the retries alone
        yield
        return
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        # read-only is enough for flock, and opens a lock file another user created
        fd = os.open(lock, os.O_RDONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError:  # a read-only store: MLflow's own error, if any, says more
        yield
        return
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise GrokexpError(
                        f"tracking store {redact_uri(uri)}: another process has held {lock} "
                        f"for {timeout_s:g} s while setting up the store's schema") from None
                time.sleep(0.05)
            except OSError:  # a file system without locks: the retries alone
                break
        yield
    finally:
        os.close(fd)  # which also releases the lock


def _retry_schema_race(open_store: Any, timeout_s: float) -> Any:
    """``open_store()``, tried again (0.2 → 2 s apart, for up to ``timeout_s``) while it
    fails the way a lost race for the schema fails."""
    migrating_until = time.monotonic() + min(timeout_s, 15.0)  # an old schema stays old

    def raced(err: Exception) -> bool:  # sqlalchemy's and MLflow's own types vary by backend
        text = str(err).lower()
        # another process may be setting up a fresh store's schema (a revision this
        # MLflow knows); a revision it does not know is another version's, for good
        found = _FOUND_VERSION.search(str(err))
        migrating = (_MIGRATING in text and time.monotonic() < migrating_until
                     and (found is None or _known_revision(found["found"])))
        return any(mark in text for mark in _SCHEMA_RACE) or migrating

    return retry(open_store, Backoff(first_s=0.2, cap_s=2.0, attempts=None, within_s=timeout_s),
                 retry_on=raced)
