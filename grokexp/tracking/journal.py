"""The recovery folder's writing side: what a tracking store could not take, kept locally.

When the store keeps failing mid-run, the tracker writes every further operation into a new
folder, in order, as lines of ``journal.jsonl`` (metrics with their steps and timestamps,
tags, data set inputs, run ends and reopenings) and files under ``files/`` (figures, weights,
the checkpoint). recovery.py replays a folder into the store (``grokexp relog``).
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from ..errors import GrokexpError
from .redact import redact_uri

__all__ = ["Journal", "JOURNAL", "dataset_input", "DATASET_SOURCE_TYPE"]

JOURNAL = "journal.jsonl"
DATASET_SOURCE_TYPE = "code"  # MLflow's word for data made by code, not read from a file


def dataset_input(entry: dict[str, Any], context: str) -> Any:
    """An MLflow ``DatasetInput`` from a journal's dataset entry (the tracker's fields)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    name, digest, source_type, source = (entry.get(key) for key in
                                         ("name", "digest", "source_type", "source"))
    if not (isinstance(name, str) and isinstance(digest, str)
            and isinstance(source_type, str) and isinstance(source, str)):
        raise GrokexpError(f"dataset entry without its name, digest or source: {entry!r}")
    schema, profile = (None if entry.get(key) is None else str(entry[key])
                       for key in ("schema", "profile"))
    dataset = Dataset(name=name, digest=digest, source_type=source_type, source=source,
                      schema=schema, profile=profile)
    return DatasetInput(dataset, [InputTag(MLFLOW_DATASET_CONTEXT, str(context))])


class Journal:
    """Append-only record of tracking operations in one recovery folder."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._files = 0

    @classmethod
    def create(cls, base: Path, tracking_uri: str, reason: str | None) -> Journal:
        """A new folder under ``base``; an OSError (a full or read-only disk) leaves nothing
        half-made behind."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        folder = base / f"{stamp}-{uuid.uuid4().hex[:6]}"
        folder.mkdir(parents=True)
        try:
            (folder / "README.txt").write_text(
                f"Tracking store {redact_uri(tracking_uri)} failed: {reason}\n"
                f"Re-log this folder once it works again:\n  grokexp relog {folder}\n",
                encoding="utf-8")
        except OSError:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return cls(folder)

    def _append(self, entry: dict[str, Any]) -> None:
        with (self.folder / JOURNAL).open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")
            out.flush()

    def metrics(self, run_id: str, rows: list[tuple[str, float, int, int]]) -> None:
        self._append({"op": "metrics", "run_id": run_id, "rows": [list(r) for r in rows]})

    def tags(self, run_id: str, tags: dict[str, str]) -> None:
        self._append({"op": "tags", "run_id": run_id, "tags": tags})

    def artifact(self, run_id: str, local: Path, artifact_dir: str | None) -> None:
        self._files += 1
        rel = Path("files") / f"{self._files:05d}" / local.name
        (self.folder / rel).parent.mkdir(parents=True)
        shutil.copyfile(local, self.folder / rel)
        self._append({"op": "artifact", "run_id": run_id, "file": rel.as_posix(),
                      "artifact_dir": artifact_dir})

    def dataset(self, run_id: str, entry: dict[str, Any], context: str) -> None:
        self._append({"op": "dataset", "run_id": run_id, "dataset": entry, "context": context})

    def end(self, run_id: str, status: str) -> None:
        self._append({"op": "end", "run_id": run_id, "status": status})

    def reopen(self, run_id: str) -> None:
        self._append({"op": "reopen", "run_id": run_id})
