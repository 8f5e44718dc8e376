"""Shared helpers: tiny specs written into tmp_path, and a real MLflow store beside them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

TINY = """
name = "tiny"
[task]
modulus = 11
[model]
embedding_dim = 16
hidden = 32
[train]
epochs = 20
lr = 1e-2
batch_size = 16
[metrics]
every = 5
"""


@pytest.fixture
def write_spec(tmp_path: Path):
    """Write spec text into tmp_path and return its path as a string."""

    def write(text: str = TINY, name: str = "tiny.toml") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow sqlite store, migrated once (creating the schema takes seconds)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def tracking_uri(tmp_path: Path, migrated_store: Path) -> str:
    """A real, empty MLflow store of this test's own under tmp_path/mlruns."""
    store = tmp_path / "mlruns" / "mlflow.db"
    store.parent.mkdir()
    shutil.copy(migrated_store, store)
    return f"sqlite:///{store}"
