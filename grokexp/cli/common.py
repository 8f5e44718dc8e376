"""What every command shares: reading a spec file, the tracking URI, the git commit.

The commands (commands.py) and their bodies (run.py, paper.py, ui.py, optimize.py,
forecast.py) all import these, so they live below all of them and import none of them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import SpecError


def read_spec(path: str, overrides: Sequence[str] = ()) -> tuple[Any, list[Any]]:
    """Read and validate a spec file and its ``--set`` overrides; expand its members."""
    from ..engine.sweep import expand_members
    from ..spec.io import load_spec

    file = Path(path)
    if file.suffix not in (".toml", ".json"):
        raise SpecError([f"{path}: expected a .toml or .json file"])
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([f"{path}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError([f"{path}: cannot read: {err}"]) from None
    spec = load_spec(text, path, overrides, default_name=file.stem)
    return spec, expand_members(spec, path)


def diagnostic_warnings(source: str, members: Sequence[Any]) -> list[str]:
    """One ``warning:`` line per diagnostic whose epochs fall past a member's budget (members
    of a sweep over ``train.epochs`` can differ), each line once."""
    lines = [f"warning: {source}: {path}: {message}" for member in members
             for path, message in member.spec.diagnostic_warnings()]
    return list(dict.fromkeys(lines))


def resolve_tracking_uri(option: str | None, spec_uri: str | None = None) -> str:
    """``--tracking-uri`` beats MLFLOW_TRACKING_URI beats the spec beats the default."""
    from ..spec.masking import learn_secret
    from ..tracking.tracker import DEFAULT_TRACKING_URI

    uri = option or os.environ.get("MLFLOW_TRACKING_URI") or spec_uri or DEFAULT_TRACKING_URI
    learn_secret(uri)  # so that a driver's message quoting a piece of it is masked too
    return uri


def store_label(uri: str) -> str:
    """The store as a user can find it: a relative SQLite path made absolute (the default
    store lives under the working directory), the password masked."""
    from ..tracking.redact import redact_uri
    from ..tracking.tracker import sqlite_path

    db = sqlite_path(uri)
    if db is not None and not db.is_absolute():
        _, sep, query = uri.partition("?")
        uri = f"sqlite:///{db.absolute()}{sep}{query}"
    return redact_uri(uri)


def store_location(uri: str) -> str | None:
    """Where a SQLite store keeps its database and artifacts on disk, or None."""
    from ..tracking.tracker import sqlite_path

    db = sqlite_path(uri)
    if db is None:
        return None
    return f"database {db.absolute()}, artifacts under {db.absolute().parent / 'artifacts'}"


def require_store(uri: str) -> None:
    """For commands that read runs: a SQLite store that does not exist is bad input (exit 2),
    not a new empty store; grokexp run from another folder starts its own ``mlruns/``."""
    from ..errors import NotFound
    from ..tracking.tracker import sqlite_path

    db = sqlite_path(uri)
    if db is not None and not db.exists():
        raise NotFound(f"no tracking store at {db.absolute()}: run grokexp from the folder "
                       "that holds mlruns/, or give --tracking-uri")


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
