"""The real tracker: an MLflow store behind the :class:`~.tracking.Tracker` interface.

Only this module (and journal.py, recovery.py, reader.py, store.py, logged_model.py and
model_folder.py) imports mlflow, lazily, so ``grokexp --help`` stays fast. Runs are named by
their MLflow run id; metrics are buffered and written with ``log_batch`` (one sqlite write per
metric costs milliseconds). The store is read back through :meth:`MlflowTracker.reader`.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .experiment import open_experiment, quiet_store_errors
from .interrupts import held, signals_held
from .journal import DATASET_SOURCE_TYPE, Journal, dataset_input
from .model_folder import ModelFolders
from .reader import RunReader
from .redact import one_line, redact_text
from .retry import Backoff, retry
from .store import open_client, store_error
from .tracker import flat_params, safe_artifact_path, sqlite_path

__all__ = ["MlflowTracker", "WRITE_RETRY"]

# a write the store refuses: 5 tries, 0.5, 1, 2 and 4 s apart (retry.py states the policy)
WRITE_RETRY = Backoff(first_s=0.5, cap_s=4.0, attempts=5)


class MlflowTracker:
    """A real MLflow store (embedded sqlite by default, or any tracking server).

    Every write is retried (:data:`WRITE_RETRY`; ``retry_delays`` gives other pauses, e.g. a
    test's short ones). When the store still fails, the tracker goes offline: that write
    and all later ones go to a :class:`~.journal.Journal`
    in a new folder under ``recovery_dir``, ``failure`` says why, and ``grokexp relog``
    replays the folder once the store works again. Nothing computed is lost, unless the
    folder cannot be written either (a full disk): then ``lost`` says why, and the writes
    the store did not take either are named in ``dropped``.
    """

    def __init__(self, tracking_uri: str, experiment: str, flush_every_s: float = 5.0,
                 retry_delays: Sequence[float] = tuple(WRITE_RETRY.pauses()),
                 recovery_dir: Path | None = None):
        if (db := sqlite_path(tracking_uri)) is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        self.tracking_uri = tracking_uri
        self.retry_delays = tuple(retry_delays)
        self.recovery_dir = recovery_dir
        self.failure: str | None = None
        self.journal: Journal | None = None
        self.lost: str | None = None  # why not even the recovery folder takes writes
        self.dropped: list[str] = []  # the writes lost then
        # many workers may open a fresh store at once: one creates the schema, the rest wait
        self.client = open_client(tracking_uri)
        quiet_store_errors()
        self.experiment_id = open_experiment(self.client, tracking_uri, experiment)
        self._buffer: dict[str, list[Any]] = {}
        self._last_flush = time.monotonic()
        self._flush_every_s = flush_every_s
        self._model_folders = ModelFolders()  # each population's network exported once

    def _write(self, what: str, action: Callable[[], Any],
               offline: Callable[[Journal], None]) -> None:
        """Run ``action`` with retries; once the store has failed, journal it instead.

        When the recovery folder cannot be written either (a full or read-only disk),
        ``lost`` says why and from then on each write is tried once on the store (it may
        work again: the checkpoint and the runs' ends get there if it does) and otherwise
        dropped, named in ``dropped``; nothing raises, so the run can stop cleanly.
        """
        if self.lost is not None:
            try:
                held(action)
            except Exception:  # the store still fails, and there is no folder to keep it
                self.dropped.append(what)
            return
        if self.failure is None:
            try:
                retry(lambda: held(action), self.retry_delays)
                return
            except Exception as err:  # sqlalchemy, requests, OSError, MlflowException
                self.failure = (f"{what} failed {len(self.retry_delays) + 1} times over "
                                f"{sum(self.retry_delays):g} s: {one_line(err)}")
        try:
            if self.journal is None:
                if self.recovery_dir is None:
                    raise store_error(self.tracking_uri, str(self.failure))
                self.journal = Journal.create(self.recovery_dir, self.tracking_uri,
                                              self.failure)
            offline(self.journal)
        except OSError as err:
            where = self.journal.folder if self.journal is not None else self.recovery_dir
            self.lost = f"the recovery folder {where} cannot be written either: " + (
                redact_text(f"{err.strerror or err}"))
            self.dropped.append(what)

    def _local_copy_failed(self, what: str, err: OSError) -> None:
        """No local copy of an artifact (a full temp dir): as for a failed store and folder."""
        if self.failure is None:
            self.failure = f"{what} failed: no local copy ({err.strerror or err})"
        if self.lost is None:
            self.lost = f"the temporary directory cannot be written: {err.strerror or err}"
        self.dropped.append(what)

    def reader(self) -> RunReader:
        """What the store holds, read back (through this tracker's client)."""
        return RunReader(self.client, self.tracking_uri)

    def run_exists(self, run_id: str) -> bool | None:
        """Whether the store holds that run; None when it did not answer."""
        return self.reader().exists(run_id)

    def recovery_folder(self) -> Path | None:
        """Where the writes the store missed are kept (once it has failed), else None."""
        return None if self.journal is None else Path(self.journal.folder)

    def reconnect(self) -> tuple[Path, dict[str, int]] | None:
        """Back online after the store failed: raises while it still fails; else replays the
        recovery folder into it (what ``grokexp relog`` does) and writes go to the store
        again. Returns the folder and what was replayed, or None when nothing was journalled.
        """
        from .recovery import relog

        self.flush()  # offline, buffered metrics go to the journal first
        self.client.get_experiment(self.experiment_id)  # the store answers, or this raises
        replayed = None
        if self.journal is not None:
            folder = Path(self.journal.folder)
            counts, _ = relog(folder, self.tracking_uri)
            replayed, self.journal = (folder, counts), None
        self.failure = self.lost = None  # what was dropped meanwhile stays in ``dropped``
        return replayed

    def start_run(self, name: str, params: Mapping[str, Any], tags: Mapping[str, str],
                  parent_id: str | None = None) -> str:
        from mlflow.entities import Param

        all_tags = {**tags, **({} if parent_id is None else {"mlflow.parentRunId": parent_id})}
        run_id: str | None = None
        try:
            with signals_held():  # a run made, its params half written: not by a Ctrl-C
                run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
                run_id = run.info.run_id
                items = [Param(k, v) for k, v in flat_params(params).items()]
                for start in range(0, len(items), 100):
                    self.client.log_batch(run_id, params=items[start:start + 100])
        except Exception as err:  # nothing has been computed yet: fail loudly
            failed = store_error(self.tracking_uri, one_line(err))
            if run_id is not None:  # made, then the store went: end it, or journal its end
                with contextlib.suppress(Exception):
                    self.end_run(run_id, "FAILED")
            raise failed from None
        return run_id

    def log_metrics(self, run_id: str, step: int, values: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._buffer.setdefault(run_id, []).extend(
            Metric(k, float(v), now, step) for k, v in values.items())
        if time.monotonic() - self._last_flush > self._flush_every_s:
            self.flush()

    def flush(self) -> None:
        self._flush({})

    def _flush(self, tags: Mapping[str, Mapping[str, str]]) -> None:
        """Every run's buffered metrics, with ``tags[run]`` in its first write."""
        buffer, self._buffer = self._buffer, {}
        for run_id in {**buffer, **tags}:
            metrics, first_tags = buffer.get(run_id, []), tags.get(run_id, {})
            cut = 1000 - len(first_tags)  # MLflow takes 1000 metrics and tags in one write
            if metrics or first_tags:
                self._flush_chunk(run_id, metrics[:cut], first_tags,
                                  "logging metrics" + " and tags" * bool(first_tags))
            for start in range(cut, len(metrics), 1000):
                self._flush_chunk(run_id, metrics[start:start + 1000], {})
        self._last_flush = time.monotonic()

    def _flush_chunk(self, run_id: str, chunk: list[Any], tags: Mapping[str, str],
                     what: str = "logging metrics") -> None:
        from mlflow.entities import RunTag

        def offline(journal: Journal) -> None:
            if chunk:
                journal.metrics(run_id, [(m.key, m.value, m.timestamp, m.step) for m in chunk])
            if tags:
                journal.tags(run_id, dict(tags))

        items = [RunTag(k, v) for k, v in tags.items()]
        self._write(what, lambda: self.client.log_batch(run_id, metrics=chunk, tags=items),
                    offline)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self._flush_chunk(run_id, [], {k: str(v) for k, v in tags.items()}, "setting tags")

    def _log_artifact(self, run_id: str, artifact_file: str,
                      write: Callable[[Path], Any]) -> None:
        folder, name = safe_artifact_path(artifact_file)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                local = Path(tmp) / name
                write(local)
                self._write(f"logging {artifact_file}",
                            lambda: self.client.log_artifact(run_id, str(local), folder),
                            lambda j: j.artifact(run_id, local, folder))
        except OSError as err:
            self._local_copy_failed(f"logging {artifact_file}", err)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self._log_artifact(run_id, artifact_file, lambda p: p.write_text(text, "utf-8"))

    def log_figure(self, run_id: str, figure: Any, artifact_file: str) -> None:
        """A matplotlib ``Figure`` (made without pyplot: no backend, nothing kept open)."""
        self._log_artifact(run_id, artifact_file, lambda p: figure.savefig(p))

    def log_files(self, run_id: str, files: Mapping[str, bytes]) -> None:
        """Several artifacts (path → content, e.g. a member's drawn figures) in one store
        write: one folder tree, one ``log_artifacts``."""
        if not files:
            return
        what = f"logging {len(files)} artifacts"
        try:
            with tempfile.TemporaryDirectory() as tmp:
                copies: dict[Path, str | None] = {}  # local copy → its artifact folder
                for artifact_file, content in files.items():
                    folder, name = safe_artifact_path(artifact_file)
                    local = Path(tmp) / (folder or "") / name
                    local.parent.mkdir(parents=True, exist_ok=True)
                    local.write_bytes(content)
                    copies[local] = folder
                self._write(what, lambda: self.client.log_artifacts(run_id, tmp),
                            lambda j: j.artifacts(run_id, copies))
        except OSError as err:
            self._local_copy_failed(what, err)

    def log_file(self, run_id: str, local_path: Path, artifact_dir: str | None = None) -> None:
        import shutil

        name = f"{artifact_dir}/{local_path.name}" if artifact_dir else local_path.name
        self._log_artifact(run_id, name, lambda p: shutil.copyfile(local_path, p))

    def log_state(self, run_id: str, state: Mapping[str, Any], artifact_file: str) -> None:
        """Tensors saved with torch.save; they load with ``torch.load(weights_only=True)``."""
        import torch

        self._log_artifact(run_id, artifact_file, lambda p: torch.save(dict(state), p))

    def log_dataset(self, run_id: str, name: str, digest: str, source: str,
                    schema: str | None = None, profile: str | None = None,
                    context: str = "training") -> None:
        """One input of the run (the runs table's Dataset column); logging it again is a
        no-op in MLflow, so a replayed journal does not double it."""
        entry = {"name": name, "digest": digest, "source_type": DATASET_SOURCE_TYPE,
                 "source": source, "schema": schema, "profile": profile}
        self._write(f"logging dataset {name}",
                    lambda: self.client.log_inputs(run_id, [dataset_input(entry, context)]),
                    lambda j: j.dataset(run_id, entry, context))

    def log_model(self, run_id: str, module: Any, example: Any, step: int = 0,
                  kind: object | None = None) -> None:
        """The network as a LoggedModel of the run (logged_model.py), tried once and never
        journalled: while the store fails none is logged (the weights are in the run). Safe
        beside the other writes, from another thread. Networks of one ``kind`` are exported
        once (model_folder.py)."""
        from .logged_model import log_logged_model

        if self.failure is not None or self.lost is not None:
            raise store_error(self.tracking_uri, f"not taking writes: {self.failure}")
        log_logged_model(self.client, self.experiment_id, run_id, module,
                         example.cpu().numpy(), step, self._model_folders, kind)

    def load_state(self, run_id: str, artifact_file: str) -> dict[str, Any] | None:
        """What :meth:`log_state` saved there (``weights_only``), or None where it is not."""
        import torch

        try:
            with tempfile.TemporaryDirectory() as tmp:
                local = self.client.download_artifacts(run_id, artifact_file, tmp)
                return dict(torch.load(local, weights_only=True))
        except Exception:  # not there, or the store did not answer
            return None

    def end_run(self, run_id: str, status: str = "FINISHED",
                tags: Mapping[str, str] | None = None) -> None:
        """The run's end; ``tags`` go with its last metrics (one store write, not two)."""
        self._flush({run_id: {k: str(v) for k, v in tags.items()}} if tags else {})
        self._write("ending a run", lambda: self.client.set_terminated(run_id, status=status),
                    lambda j: j.end(run_id, status))

    def reopen_run(self, run_id: str) -> None:
        self._write("reopening a run",
                    lambda: self.client.update_run(run_id, status="RUNNING"),
                    lambda j: j.reopen(run_id))

