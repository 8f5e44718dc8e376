"""The read side of a tracking store: a run, its members, their series and their artifacts.

The tracker (tracker.py, mlflow_tracker.py) writes runs; :class:`RunReader` reads them back,
so that no other module walks MLflow's runs itself: ``grokexp figures``
(paper/recompute.py), ``reproduce --reuse`` (paper/reproduce.py), ``forecast --runs``
(cli/forecast.py), ``run --resume`` (resume.py) and the study (through
``MlflowTracker.run_exists``). A run comes back as a :class:`TrackedRun` (plain fields, no
MLflow types), a member's metrics as a :class:`~grokexp.series.MemberSeries`.

A read the store refuses raises a one-line :class:`StoreReadError`; a run that is not there,
:class:`RunNotFound` (exit 2, like any bad input).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from ..errors import GrokexpError, NotFound, is_not_found
from ..grokking import grok_epochs
from ..series import MemberSeries
from .redact import one_line, redact_uri

__all__ = ["RunReader", "TrackedRun", "Artifact", "StoreReadError", "RunNotFound",
           "param_value", "SUMMARY_METRICS"]

# logged once, when a member ends (run/hooks.py's summary_metrics): facts, not series
SUMMARY_METRICS = ("train_grok_epoch", "test_grok_epoch", "grokking_delay")
_PAGE = 1000  # runs per search page
T = TypeVar("T")


class StoreReadError(GrokexpError):
    """The store did not answer a read (it failed: what was asked for may well be there).
    ``detail`` is the store's error in one line, ``error`` the error itself."""

    def __init__(self, tracking_uri: str, err: Exception, what: str | None = None):
        self.detail, self.error = one_line(err), err
        said = self.detail if what is None else f"{what} ({self.detail})"
        super().__init__(f"tracking store {redact_uri(tracking_uri)}: {said}")


class RunNotFound(NotFound):
    """The store answered: it holds no such run. ``detail`` is its answer in one line."""

    def __init__(self, tracking_uri: str, run_id: str, err: Exception):
        self.detail = one_line(err)
        super().__init__(f"no run {run_id} in {redact_uri(tracking_uri)}")


def param_value(text: str) -> Any:
    """A param as the spec had it: JSON (how lists and tables are logged, and numbers),
    else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _number(text: str | None) -> float | None:
    try:
        return None if text is None else float(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class Artifact:
    path: str  # relative to the run's artifact root, e.g. "checkpoints/epoch_000010.pt"
    is_dir: bool


@dataclass(frozen=True)
class TrackedRun:
    """One run as the store holds it: ids, status, params and tags, its metrics' names."""

    run_id: str
    name: str
    experiment_id: str
    status: str
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()  # the names of the metrics it logged
    artifact_uri: str = ""

    @property
    def label(self) -> str:
        return self.name or self.run_id

    @property
    def parent_id(self) -> str | None:
        return self.tags.get("mlflow.parentRunId")

    @property
    def role(self) -> str | None:
        """``sweep`` (a parent), ``study``, ``trial``, ``forecast``; None for a member."""
        return self.tags.get("grokexp.role")

    @property
    def member(self) -> int:
        """Its index among the members of its experiment run (0 for a run of its own)."""
        return int(self.tags.get("grokexp.member", "0"))

    @property
    def varied(self) -> dict[str, Any]:
        """The values its sweep gave it (the ``varied.*`` params), as the spec had them."""
        return {k.removeprefix("varied."): param_value(v) for k, v in self.params.items()
                if k.startswith("varied.")}


def _tracked(run: Any) -> TrackedRun:
    info, data = run.info, run.data
    return TrackedRun(run_id=info.run_id, name=info.run_name or "",
                      experiment_id=str(info.experiment_id), status=str(info.status),
                      params=dict(data.params), tags=dict(data.tags),
                      metrics=tuple(data.metrics), artifact_uri=info.artifact_uri or "")


class RunReader:
    """What a tracking store holds, read back; ``client`` is an ``MlflowClient``."""

    def __init__(self, client: Any, tracking_uri: str):
        self._client, self.tracking_uri = client, tracking_uri

    @classmethod
    def open(cls, tracking_uri: str) -> RunReader:
        """A reader over the store at ``tracking_uri`` (a fresh store gets its schema)."""
        from .store import open_client

        return cls(open_client(tracking_uri), tracking_uri)

    def _read(self, action: Callable[[], T], what: str | None = None) -> T:
        try:
            return action()
        except Exception as err:  # the store's own exception types vary by backend
            raise StoreReadError(self.tracking_uri, err, what) from None

    def run(self, run_id: str) -> TrackedRun:
        """One run; :class:`RunNotFound` when the store holds none by that id."""
        try:
            return _tracked(self._client.get_run(run_id))
        except Exception as err:
            if is_not_found(err):
                raise RunNotFound(self.tracking_uri, run_id, err) from None
            raise StoreReadError(self.tracking_uri, err, f"no run {run_id}") from None

    def exists(self, run_id: str) -> bool | None:
        """Whether the store holds that run; None when it did not answer (an outage is no
        proof that the run is missing)."""
        try:
            self.run(run_id)
            return True
        except RunNotFound:
            return False
        except StoreReadError:
            return None

    def experiment_name(self, run: TrackedRun) -> str:
        return str(self._read(lambda: self._client.get_experiment(run.experiment_id)).name)

    def _search(self, experiment_id: str, filter_string: str,
                order_by: list[str] | None = None) -> Iterator[TrackedRun]:
        """Every run of the experiment that the filter takes, page by page, in the store's
        order (newest first unless ``order_by`` says otherwise)."""
        token = None
        while True:
            page = self._read(partial(self._client.search_runs, [experiment_id],
                                      filter_string, max_results=_PAGE, order_by=order_by,
                                      page_token=token))
            yield from map(_tracked, page)
            token = page.token
            if not token:
                return

    def children(self, run: TrackedRun) -> list[TrackedRun]:
        """The runs whose parent is ``run`` (a sweep's members), in member order."""
        found = self._search(run.experiment_id, f"tags.mlflow.parentRunId = '{run.run_id}'")
        return sorted(found, key=lambda r: r.member)

    def members(self, run: TrackedRun) -> list[TrackedRun]:
        """A sweep's member runs in member order; a run without children is its own only
        member."""
        return self.children(run) or [run]

    def latest(self, experiment: str, tags: Mapping[str, str]) -> TrackedRun | None:
        """The newest top-level run (no parent) of the experiment with these tag values, or
        None (no such experiment, or no such run)."""
        found = self._read(lambda: self._client.get_experiment_by_name(experiment))
        if found is None:
            return None
        where = " and ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items())
        newest = self._search(str(found.experiment_id), where,
                              ["attributes.start_time DESC"])
        return next((r for r in newest if r.parent_id is None), None)

    def series(self, run: TrackedRun) -> MemberSeries:
        """A member run's metrics, a column per metric with its own epochs, and what its
        params and tags say of it (label, budget, threshold, status; its varied values, lr
        and weight decay). The summary metrics are no columns: the grok epochs are dated
        from the columns, by the rules of ``grokexp.grokking``. A step logged twice keeps
        its last value."""
        params = run.params
        epochs = params.get("train.epochs")
        points: dict[str, dict[int, float]] = {}
        for key in sorted(set(run.metrics) - set(SUMMARY_METRICS)):
            history = self._read(partial(self._client.get_metric_history, run.run_id, key))
            if history:  # a step logged twice: its last value
                points[key] = {int(m.step): float(m.value) for m in history}
        member = MemberSeries.from_points(
            points, index=run.member, label=run.label, run_id=run.run_id,
            status=run.tags.get("grokexp.status", run.status),
            reason=run.tags.get("grokexp.reason", ""),
            threshold=float(params.get("metrics.grok_threshold", 0.95)),
            budget=None if epochs is None else int(epochs), varied=run.varied,
            lr=_number(params.get("train.lr")),
            weight_decay=_number(params.get("train.weight_decay")))
        member.train_grok_epoch, member.test_grok_epoch = grok_epochs(member.columns,
                                                                      member.threshold)
        return member

    def artifacts(self, run_id: str, folder: str | None = None) -> list[Artifact]:
        """What the run's artifact folder holds (one level)."""
        items = self._read(lambda: self._client.list_artifacts(run_id, folder))
        return [Artifact(item.path, bool(item.is_dir)) for item in items]

    def download(self, run_id: str, path: str, dst: Path) -> Path:
        """One artifact (a file or a folder) of the run into ``dst``; its local path."""
        return Path(self._read(lambda: self._client.download_artifacts(run_id, path,
                                                                       str(dst))))
