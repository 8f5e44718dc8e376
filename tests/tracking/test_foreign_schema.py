"""A store whose schema is from another MLflow version: one line and exit 1 from every command
that opens it, at once (no traceback, no wait for a migration that will never come)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from grokexp.cli import main

UNKNOWN = "f0f0f0f0f0f0"  # no MLflow's revision


@pytest.fixture
def foreign_store(tmp_path: Path, migrated_store: Path) -> str:
    """A real MLflow sqlite store whose alembic revision no MLflow version has."""
    store = tmp_path / "foreign" / "mlflow.db"
    store.parent.mkdir()
    shutil.copy(migrated_store, store)
    with sqlite3.connect(store) as connection:
        connection.execute("UPDATE alembic_version SET version_num = ?", (UNKNOWN,))
    return f"sqlite:///{store}"


def _commands(spec: str, opt_spec: str, folder: Path) -> dict[str, list[str]]:
    return {"run": ["run", spec], "relog": ["relog", str(folder)],
            "optimize": ["optimize", opt_spec, "--n-trials", "1", "--batch", "1"],
            "figures": ["figures", "0123456789abcdef"], "forecast": ["forecast", "--runs",
                                                                     "0123456789abcdef"]}


@pytest.mark.parametrize("command", ["run", "relog", "optimize", "figures", "forecast"])
def test_a_store_of_another_mlflow_version_is_one_line(command, foreign_store, write_spec,
                                                       tmp_path):
    from optimize_helpers import OPT_TINY

    folder = tmp_path / "recovery"
    folder.mkdir()
    (folder / "journal.jsonl").write_text(json.dumps(
        {"op": "tags", "run_id": "0123456789abcdef", "tags": {"a": "b"}}) + "\n")
    args = _commands(write_spec(), write_spec(OPT_TINY, "opt.toml"), folder)[command]
    start = time.monotonic()
    result = CliRunner().invoke(main, [*args, "--tracking-uri", foreign_store])
    seconds = time.monotonic() - start
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.splitlines() if not line.startswith("warning: ")]
    assert lines == [f"error: tracking store {foreign_store}: its schema (revision {UNKNOWN}) "
                     f"is from another MLflow version than this one ({_mlflow_version()}, "
                     f"revision {_head()}): open it with the MLflow that made it, or use "
                     "another store"], result.output
    assert seconds < 12, f"{seconds:.1f} s: waited for a migration"


def _mlflow_version() -> str:
    import mlflow

    return mlflow.__version__


def _head() -> str:
    from mlflow.store.db.utils import _get_latest_schema_revision

    return str(_get_latest_schema_revision())
