"""Checks on a tracking store before anything is trained: reachable, writable, not locked.

Each problem becomes one line naming the store (password masked) and what is wrong, so that
``grokexp run`` fails in a second instead of after an hour of training.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import GrokexpError
from .redact import redact_uri

__all__ = ["check_store"]

_DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "postgres": 5432,
                  "mysql": 3306, "mssql": 1433}


def check_store(uri: str, timeout_s: float = 2.0) -> None:
    """Raise a one-line :class:`GrokexpError` when the store at ``uri`` cannot take a run."""
    shown = redact_uri(uri)
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower()
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
    if not uri.startswith("sqlite:///"):
        return "expected sqlite:///PATH"
    db = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
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


def _network_problem(uri: str, scheme: str, timeout_s: float) -> str | None:
    try:
        parts = urlsplit(uri)
        host, port = parts.hostname, parts.port or _DEFAULT_PORTS[scheme]
    except ValueError as err:
        return f"not a valid URL ({err})"
    if not host:
        return None  # e.g. a unix socket: let the driver decide
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except OSError as err:
        reason = err.strerror or type(err).__name__
        return f"cannot reach {host}:{port} ({reason})"
