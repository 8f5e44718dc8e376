"""Where runs are recorded: MLflow behind a narrow interface, with a null twin for tests.

Only this module imports mlflow (lazily, so ``grokexp --help`` stays fast). Runs are named by
their MLflow run id; metrics are buffered and written with ``log_batch`` because one sqlite
write per metric costs milliseconds.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from .errors import GrokexpError

__all__ = [
    "Tracker",
    "NullTracker",
    "MlflowTracker",
    "DEFAULT_TRACKING_URI",
    "EXPERIMENT_KIND_TAG",
    "artifact_root_for",
    "flat_params",
]

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
EXPERIMENT_KIND_TAG = ("mlflow.experimentKind", "custom_model_development")
_PARAM_VALUE_LIMIT = 6000


class Tracker(Protocol):
    """What the runner needs from a tracking backend."""

    experiment_id: str

    def start_run(self, name: str, params: Mapping[str, Any], tags: Mapping[str, str],
                  parent_id: str | None = None) -> str: ...
    def log_metrics(self, run_id: str, step: int, values: Mapping[str, float]) -> None: ...
    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...
    def log_text(self, run_id: str, text: str, artifact_file: str) -> None: ...
    def log_figure(self, run_id: str, figure: Any, artifact_file: str) -> None: ...
    def log_file(self, run_id: str, local_path: Path, artifact_dir: str | None = None) -> None: ...
    def log_state(self, run_id: str, state: Mapping[str, Any], artifact_file: str) -> None: ...
    def flush(self) -> None: ...
    def end_run(self, run_id: str, status: str = "FINISHED") -> None: ...


def flat_params(flat: Mapping[str, Any]) -> dict[str, str]:
    """MLflow param values are strings of bounded length; lists become JSON."""
    out = {}
    for key, value in flat.items():
        text = json.dumps(value) if isinstance(value, (list, dict, tuple)) else str(value)
        out[key] = text[:_PARAM_VALUE_LIMIT]
    return out


def artifact_root_for(tracking_uri: str) -> str | None:
    """Artifacts of an embedded sqlite store live beside it (``<dir>/artifacts``)."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        return (db.parent / "artifacts").resolve().as_uri()
    return None


class NullTracker:
    """Records in memory what would have been logged; the loop can run without MLflow."""

    def __init__(self) -> None:
        self.experiment_id = "0"
        self.runs: dict[str, dict[str, Any]] = {}

    def start_run(self, name: str, params: Mapping[str, Any], tags: Mapping[str, str],
                  parent_id: str | None = None) -> str:
        run_id = uuid.uuid4().hex
        self.runs[run_id] = {"name": name, "params": dict(params), "tags": dict(tags),
                             "parent": parent_id, "metrics": [], "artifacts": {},
                             "status": "RUNNING"}
        return run_id

    def log_metrics(self, run_id: str, step: int, values: Mapping[str, float]) -> None:
        self.runs[run_id]["metrics"].append((step, dict(values)))

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self.runs[run_id]["tags"].update(tags)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.runs[run_id]["artifacts"][artifact_file] = text

    def log_figure(self, run_id: str, figure: Any, artifact_file: str) -> None:
        self.runs[run_id]["artifacts"][artifact_file] = figure

    def log_file(self, run_id: str, local_path: Path, artifact_dir: str | None = None) -> None:
        key = f"{artifact_dir}/{local_path.name}" if artifact_dir else local_path.name
        self.runs[run_id]["artifacts"][key] = local_path.read_bytes()

    def log_state(self, run_id: str, state: Mapping[str, Any], artifact_file: str) -> None:
        self.runs[run_id]["artifacts"][artifact_file] = dict(state)

    def flush(self) -> None:
        pass

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.runs[run_id]["status"] = status


class MlflowTracker:
    """A real MLflow store (embedded sqlite by default, or any tracking server)."""

    def __init__(self, tracking_uri: str, experiment: str, flush_every_s: float = 5.0):
        import logging

        from mlflow.tracking import MlflowClient

        for noisy in ("mlflow.store.db.utils", "alembic"):  # schema set-up chatter
            logging.getLogger(noisy).setLevel(logging.WARNING)
        if tracking_uri.startswith("sqlite:///"):
            Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True,
                                                                      exist_ok=True)
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri)
        try:
            found = self.client.get_experiment_by_name(experiment)
            if found is None:
                self.experiment_id = self.client.create_experiment(
                    experiment, artifact_location=artifact_root_for(tracking_uri))
            else:
                self.experiment_id = found.experiment_id
            self.client.set_experiment_tag(self.experiment_id, *EXPERIMENT_KIND_TAG)
        except Exception as err:  # the store's own exception types vary by backend
            raise GrokexpError(f"tracking store {tracking_uri}: {err}") from None
        self._buffer: dict[str, list[Any]] = {}
        self._last_flush = time.monotonic()
        self._flush_every_s = flush_every_s

    def start_run(self, name: str, params: Mapping[str, Any], tags: Mapping[str, str],
                  parent_id: str | None = None) -> str:
        from mlflow.entities import Param

        all_tags = dict(tags)
        if parent_id is not None:
            all_tags["mlflow.parentRunId"] = parent_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
        run_id = run.info.run_id
        items = [Param(k, v) for k, v in flat_params(params).items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[start:start + 100])
        return run_id

    def log_metrics(self, run_id: str, step: int, values: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._buffer.setdefault(run_id, []).extend(
            Metric(k, float(v), now, step) for k, v in values.items())
        if time.monotonic() - self._last_flush > self._flush_every_s:
            self.flush()

    def flush(self) -> None:
        for run_id, metrics in self._buffer.items():
            for start in range(0, len(metrics), 1000):
                self.client.log_batch(run_id, metrics=metrics[start:start + 1000])
        self._buffer = {}
        self._last_flush = time.monotonic()

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    def log_figure(self, run_id: str, figure: Any, artifact_file: str) -> None:
        import matplotlib.pyplot as plt

        self.client.log_figure(run_id, figure, artifact_file)
        plt.close(figure)

    def log_file(self, run_id: str, local_path: Path, artifact_dir: str | None = None) -> None:
        self.client.log_artifact(run_id, str(local_path), artifact_dir)

    def log_state(self, run_id: str, state: Mapping[str, Any], artifact_file: str) -> None:
        """Tensors saved with torch.save; they load with ``torch.load(weights_only=True)``."""
        import torch

        path = Path(artifact_file)
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / path.name
            torch.save(dict(state), local)
            self.client.log_artifact(run_id, str(local), str(path.parent) or None)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.flush()
        self.client.set_terminated(run_id, status=status)
