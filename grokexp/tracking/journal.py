"""The recovery folder's journal: what a tracking store could not take, kept locally.

When the store keeps failing mid-run, the tracker writes every further operation into a new
folder, in order, as lines of ``journal.jsonl`` (metrics with their steps and timestamps,
tags, data set inputs, run ends and reopenings) and files under ``files/`` (figures, weights,
the checkpoint): :class:`Journal`. :func:`read_entries` reads a journal back, each entry
checked for the shape the tracker writes; recovery.py replays a folder into the store
(``grokexp relog``).
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from ..errors import GrokexpError, SpecError
from .redact import redact_uri

__all__ = ["Journal", "JOURNAL", "dataset_input", "DATASET_SOURCE_TYPE", "read_entries",
           "inside"]

JOURNAL = "journal.jsonl"
DATASET_SOURCE_TYPE = "code"  # MLflow's word for data made by code, not read from a file
STATUSES = ("FINISHED", "FAILED", "KILLED")  # how a journal may end a run


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

    def artifacts(self, run_id: str, copies: dict[Path, str | None]) -> None:
        """Several files: local copy → its artifact folder."""
        for local, artifact_dir in copies.items():
            self.artifact(run_id, local, artifact_dir)

    def dataset(self, run_id: str, entry: dict[str, Any], context: str) -> None:
        self._append({"op": "dataset", "run_id": run_id, "dataset": entry, "context": context})

    def end(self, run_id: str, status: str) -> None:
        self._append({"op": "end", "run_id": run_id, "status": status})

    def reopen(self, run_id: str) -> None:
        self._append({"op": "reopen", "run_id": run_id})


def read_entries(folder: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, entry) for each line of the journal, each entry checked for its shape."""
    path = folder / JOURNAL
    if not path.is_file():
        raise SpecError([f"{folder}: not a grokexp recovery folder (no {JOURNAL})"])
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    entries = []
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            if number == len(lines):
                break  # a last line cut short by a crash: everything before it is whole
            raise SpecError([f"{path}:{number}: not a JSON line"]) from None
        problem = _entry_problem(folder, entry)
        if problem:
            raise SpecError([f"{path}:{number}: {problem}"])
        entries.append((number, entry))
    return entries


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _entry_problem(folder: Path, entry: Any) -> str | None:
    """What is wrong with one journal entry (the fields the tracker writes), or None."""
    from .tracker import safe_artifact_path

    if not isinstance(entry, dict) or not isinstance(entry.get("run_id"), str) or not (
            entry["run_id"]):
        return "not a journal entry (an object with a run_id)"
    op = entry.get("op")
    if op == "metrics":
        rows = entry.get("rows")
        if not isinstance(rows, list) or not all(
                isinstance(r, list) and len(r) == 4 and isinstance(r[0], str) and r[0]
                and _is_number(r[1]) and _is_int(r[2]) and _is_int(r[3]) for r in rows):
            return "metrics entry: rows must be [key, value, timestamp, step] lists"
    elif op == "tags":
        tags = entry.get("tags")
        if not isinstance(tags, dict) or not all(
                isinstance(k, str) and k and isinstance(v, str) for k, v in tags.items()):
            return "tags entry: tags must map names to strings"
    elif op == "artifact":
        file, target = entry.get("file"), entry.get("artifact_dir")
        if not isinstance(file, str) or not (target is None or isinstance(target, str)):
            return "artifact entry: needs a file name and an artifact_dir (or null)"
        try:
            local = inside(folder, file)
            if target is not None:
                safe_artifact_path(f"{target}/{local.name}")
        except GrokexpError as err:
            return f"artifact entry: {err}"
    elif op == "dataset":
        if not isinstance(entry.get("dataset"), dict):
            return "dataset entry without its dataset"
        try:
            dataset_input(entry["dataset"], str(entry.get("context", "training")))
        except GrokexpError as err:
            return str(err)
    elif op == "end":
        if entry.get("status") not in STATUSES:
            return f"end entry: status must be one of {', '.join(STATUSES)}"
    elif op != "reopen":
        return f"unknown journal operation {str(op)[:40]!r}"
    return None


def inside(folder: Path, rel: str) -> Path:
    """A journal's file reference, refused if it points outside the recovery folder."""
    path = (folder / rel).resolve()
    if not path.is_relative_to(folder.resolve()) or not path.is_file():
        raise GrokexpError(f"journal names a file outside the folder: {rel[:200]!r}")
    return path
