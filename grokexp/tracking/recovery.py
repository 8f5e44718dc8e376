"""The recovery folder: what a tracking store could not take, kept locally until it can.

When the store keeps failing mid-run, the tracker writes every further operation here, in
order, as lines of ``journal.jsonl`` (metrics with their steps and timestamps, tags, data
set inputs, run ends) and files under ``files/`` (figures, weights, the checkpoint).
``grokexp relog FOLDER`` replays the journal into the store once it works again; metrics
already in the store are skipped (and a data set input is logged once per run), so replaying
twice does no harm. This module and mlflow_tracker.py are the only ones that talk to mlflow.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from ..errors import GrokexpError
from .redact import redact_text

__all__ = ["Journal", "relog", "dataset_input", "DATASET_SOURCE_TYPE"]

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
        stamp = time.strftime("%Y%m%d-%H%M%S")
        folder = base / f"{stamp}-{uuid.uuid4().hex[:6]}"
        folder.mkdir(parents=True)
        (folder / "README.txt").write_text(
            f"Tracking store {redact_text(tracking_uri)} failed: {reason}\n"
            f"Re-log this folder once it works again:\n  grokexp relog {folder}\n",
            encoding="utf-8")
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


def _entries(folder: Path) -> list[dict[str, Any]]:
    path = folder / JOURNAL
    if not path.is_file():
        raise GrokexpError(f"{folder}: not a grokexp recovery folder (no {JOURNAL})")
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            if number == len(path.read_text(encoding="utf-8").splitlines()):
                break  # a last line cut short by a crash: everything before it is whole
            raise GrokexpError(f"{path}:{number}: not a JSON line") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("run_id"), str):
            raise GrokexpError(f"{path}:{number}: not a journal entry")
        entries.append(entry)
    return entries


def _inside(folder: Path, rel: str) -> Path:
    """A journal's file reference, refused if it points outside the recovery folder."""
    path = (folder / rel).resolve()
    if not path.is_relative_to(folder.resolve()) or not path.is_file():
        raise GrokexpError(f"{folder}: journal names a file outside the folder: {rel!r}")
    return path


def relog(folder: Path, tracking_uri: str) -> tuple[dict[str, int], list[str]]:
    """Replay a recovery folder into the store.

    Returns counts of what was written and the runs that received a checkpoint (those that
    ``grokexp run --resume`` can continue).
    """
    from mlflow.entities import Metric, RunTag

    from .store import open_client
    from .tracker import safe_artifact_path

    entries = _entries(folder)
    client = open_client(tracking_uri)
    counts = {"metrics": 0, "skipped": 0, "tags": 0, "artifacts": 0, "datasets": 0,
              "runs ended": 0}
    seen: dict[tuple[str, str], set[int]] = {}
    checkpoints: list[str] = []
    try:
        for entry in entries:
            run_id, op = entry["run_id"], entry.get("op")
            if op == "metrics":
                fresh = []
                for key, value, timestamp, step in entry["rows"]:
                    if (run_id, key) not in seen:
                        seen[run_id, key] = {m.step for m in
                                             client.get_metric_history(run_id, key)}
                    if int(step) in seen[run_id, key]:
                        counts["skipped"] += 1
                        continue
                    seen[run_id, key].add(int(step))
                    fresh.append(Metric(str(key), float(value), int(timestamp), int(step)))
                for start in range(0, len(fresh), 1000):
                    client.log_batch(run_id, metrics=fresh[start:start + 1000])
                counts["metrics"] += len(fresh)
            elif op == "tags":
                client.log_batch(run_id, tags=[RunTag(str(k), str(v))
                                               for k, v in entry["tags"].items()])
                counts["tags"] += len(entry["tags"])
            elif op == "artifact":
                local = _inside(folder, str(entry["file"]))
                target = entry.get("artifact_dir")
                if target is not None:
                    safe_artifact_path(f"{target}/{local.name}")
                client.log_artifact(run_id, str(local), target)
                counts["artifacts"] += 1
                if target == "checkpoint" and run_id not in checkpoints:
                    checkpoints.append(run_id)
            elif op == "dataset":
                if not isinstance(entry.get("dataset"), dict):
                    raise GrokexpError(f"{folder}: a dataset entry without its dataset")
                client.log_inputs(run_id, [dataset_input(entry["dataset"],
                                                         str(entry.get("context", "training")))])
                counts["datasets"] += 1
            elif op == "end":
                client.set_terminated(run_id, status=str(entry["status"]))
                counts["runs ended"] += 1
            elif op == "reopen":
                client.update_run(run_id, status="RUNNING")
            else:
                raise GrokexpError(f"{folder}: unknown journal operation {op!r}")
    except GrokexpError:
        raise
    except Exception as err:  # the store is still failing: say so, keep the folder
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise GrokexpError(f"tracking store {redact_text(tracking_uri)}: {redact_text(first)}"
                           f"; {folder} is kept, run grokexp relog again later") from None
    (folder / "RELOGGED").write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"), encoding="utf-8")
    return counts, checkpoints
