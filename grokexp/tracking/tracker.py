"""Where runs are recorded: the narrow interface the runner writes to, and its null twin.

The real tracker, over MLflow, is mlflow_tracker.py; ``NullTracker`` records in memory so
the loop and its tests run without MLflow; reader.py reads back what a store holds. The
helpers here (parameter values, artifact names, where a sqlite store keeps its artifacts)
are shared by both trackers.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import GrokexpError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "Tracker",
    "NullTracker",
    "DEFAULT_TRACKING_URI",
    "store_scheme",
    "sqlite_path",
    "EXPERIMENT_KIND_TAG",
    "artifact_root_for",
    "flat_params",
    "safe_artifact_path",
]


DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
EXPERIMENT_KIND_TAG = ("mlflow.experimentKind", "custom_model_development")
_PARAM_VALUE_LIMIT = 6000


class Tracker(Protocol):
    """What the runner needs from a tracking backend, and how its store is doing.

    ``failure`` says why the store stopped taking writes (None while it takes them), and
    ``lost`` why not even the recovery folder takes them; :meth:`recovery_folder` is where
    the writes the store missed are kept, :meth:`reconnect` brings them back once it answers
    again (it raises while the store still fails). :meth:`run_exists` is None when the store
    did not answer. :meth:`end_run`'s ``tags`` are set with the run's last metrics, in one
    write. :meth:`log_model` logs a member's network (an ``nn.Module``: ``(N, 2)``
    int64 pairs in, logits out; ``example`` a few such pairs) as a model of its run;
    :meth:`load_state` reads back what :meth:`log_state` saved (None when it is not there).
    """

    experiment_id: str
    tracking_uri: str
    failure: str | None
    lost: str | None

    def start_run(self, name: str, params: Mapping[str, Any], tags: Mapping[str, str],
                  parent_id: str | None = None) -> str: ...
    def log_metrics(self, run_id: str, step: int, values: Mapping[str, float]) -> None: ...
    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...
    def log_text(self, run_id: str, text: str, artifact_file: str) -> None: ...
    def log_figure(self, run_id: str, figure: Any, artifact_file: str) -> None: ...
    def log_files(self, run_id: str, files: Mapping[str, bytes]) -> None: ...
    def log_file(self, run_id: str, local_path: Path, artifact_dir: str | None = None) -> None: ...
    def log_state(self, run_id: str, state: Mapping[str, Any], artifact_file: str) -> None: ...
    def log_dataset(self, run_id: str, name: str, digest: str, source: str,
                    schema: str | None = None, profile: str | None = None,
                    context: str = "training") -> None: ...
    def log_model(self, run_id: str, module: nn.Module, example: torch.Tensor,
                  step: int = 0, kind: object | None = None) -> None: ...
    def load_state(self, run_id: str, artifact_file: str) -> dict[str, Any] | None: ...
    def flush(self) -> None: ...
    def end_run(self, run_id: str, status: str = "FINISHED",
                tags: Mapping[str, str] | None = None) -> None: ...
    def reopen_run(self, run_id: str) -> None: ...
    def run_exists(self, run_id: str) -> bool | None: ...
    def recovery_folder(self) -> Path | None: ...
    def reconnect(self) -> tuple[Path, dict[str, int]] | None: ...


def flat_params(flat: Mapping[str, Any]) -> dict[str, str]:
    """MLflow param values are strings of bounded length; lists become JSON."""
    out = {}
    for key, value in flat.items():
        text = json.dumps(value) if isinstance(value, (list, dict, tuple)) else str(value)
        out[key] = text[:_PARAM_VALUE_LIMIT]
    return out


def safe_artifact_path(artifact_file: str) -> tuple[str | None, str]:
    """``"figures/a.png"`` → ``("figures", "a.png")``; names that could leave the run fail.

    Absolute paths, ``..``, backslashes, empty parts and control characters are refused, so
    no artifact name (even one built from spec content) writes outside its run's folder.
    """
    bad = (not artifact_file or "\\" in artifact_file or artifact_file.startswith("/")
           or re.search(r"[\x00-\x1f]", artifact_file) is not None)
    parts = artifact_file.split("/")
    if bad or any(p in ("", ".", "..") for p in parts) or ":" in parts[0]:
        raise GrokexpError(f"artifact name {artifact_file!r} would leave the run's folder")
    folder = "/".join(parts[:-1])
    return (folder or None), parts[-1]


def store_scheme(uri: str) -> str:
    """A store URI's scheme without its driver: ``postgresql+psycopg://…`` → postgresql."""
    return uri.split(":", 1)[0].split("+", 1)[0].lower()


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///PATH[?query]`` store (as written: relative to the
    working directory unless absolute), or None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").partition("?")[0])


def artifact_root_for(tracking_uri: str) -> str | None:
    """Artifacts of an embedded sqlite store live beside it (``<dir>/artifacts``)."""
    db = sqlite_path(tracking_uri)
    return None if db is None else (db.parent / "artifacts").resolve().as_uri()


class NullTracker:
    """Records in memory what would have been logged; the loop can run without MLflow."""

    def __init__(self) -> None:
        self.experiment_id = "0"
        self.tracking_uri = ""
        self.failure: str | None = None  # memory never fails
        self.lost: str | None = None
        self.runs: dict[str, dict[str, Any]] = {}

    def start_run(self, name: str, params: Mapping[str, Any], tags: Mapping[str, str],
                  parent_id: str | None = None) -> str:
        run_id = uuid.uuid4().hex
        self.runs[run_id] = {"name": name, "params": dict(params), "tags": dict(tags),
                             "parent": parent_id, "metrics": [], "artifacts": {},
                             "datasets": [], "models": [], "status": "RUNNING"}
        return run_id

    def log_metrics(self, run_id: str, step: int, values: Mapping[str, float]) -> None:
        self.runs[run_id]["metrics"].append((step, dict(values)))

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self.runs[run_id]["tags"].update(tags)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        safe_artifact_path(artifact_file)
        self.runs[run_id]["artifacts"][artifact_file] = text

    def log_figure(self, run_id: str, figure: Any, artifact_file: str) -> None:
        safe_artifact_path(artifact_file)
        self.runs[run_id]["artifacts"][artifact_file] = figure

    def log_files(self, run_id: str, files: Mapping[str, bytes]) -> None:
        for artifact_file, content in files.items():
            safe_artifact_path(artifact_file)
            self.runs[run_id]["artifacts"][artifact_file] = content

    def log_file(self, run_id: str, local_path: Path, artifact_dir: str | None = None) -> None:
        key = f"{artifact_dir}/{local_path.name}" if artifact_dir else local_path.name
        self.runs[run_id]["artifacts"][key] = local_path.read_bytes()

    def log_state(self, run_id: str, state: Mapping[str, Any], artifact_file: str) -> None:
        safe_artifact_path(artifact_file)
        self.runs[run_id]["artifacts"][artifact_file] = dict(state)

    def log_dataset(self, run_id: str, name: str, digest: str, source: str,
                    schema: str | None = None, profile: str | None = None,
                    context: str = "training") -> None:
        entry = {"name": name, "digest": digest, "source": source, "schema": schema,
                 "profile": profile, "context": context}
        if entry not in self.runs[run_id]["datasets"]:  # as in MLflow: once per run
            self.runs[run_id]["datasets"].append(entry)

    def log_model(self, run_id: str, module: nn.Module, example: torch.Tensor,
                  step: int = 0, kind: object | None = None) -> None:
        self.runs[run_id]["models"].append({"module": module, "example": example,
                                            "step": step})

    def load_state(self, run_id: str, artifact_file: str) -> dict[str, Any] | None:
        state = self.runs[run_id]["artifacts"].get(artifact_file) if run_id in self.runs else None
        return dict(state) if isinstance(state, dict) else None

    def flush(self) -> None:
        pass

    def end_run(self, run_id: str, status: str = "FINISHED",
                tags: Mapping[str, str] | None = None) -> None:
        self.runs[run_id]["tags"].update(tags or {})
        self.runs[run_id]["status"] = status

    def reopen_run(self, run_id: str) -> None:
        self.runs[run_id]["status"] = "RUNNING"

    def run_exists(self, run_id: str) -> bool | None:
        return run_id in self.runs

    def recovery_folder(self) -> Path | None:
        return None

    def reconnect(self) -> tuple[Path, dict[str, int]] | None:
        return None
