"""A member's trained network as an MLflow LoggedModel of its run, logged off the training path.

:func:`log_logged_model` is the MLflow side: the network (a plain ``nn.Module``, the
architecture's twin: ``(N, 2)`` int64 operand pairs in, ``(N, C)`` logits out) is exported
with ``torch.export`` (MLflow's safe ``pt2`` format), so loading it needs torch and MLflow and
no grokexp. The input example is a numpy array: MLflow infers the ``(-1, 2)`` tensor signature
from it (from a tensor it infers none, and ``pt2`` needs one), and its batch of more than one
pair leaves the exported batch axis dynamic (``torch.export`` pins an axis of size 1). The
requirements are given (``torch==…``): MLflow's inference of them costs about 11 s a model.
The folder is written by ``model_folder.ModelFolders``, which exports a population's network
once and writes each later member's weights into that program.

:class:`ModelLog` hands each network to one background thread, so the training loop never waits
for an export (about 0.1 s of CPU a network exported anew, a few hundredths for a population's
later members, and about 3 s once per process for torch.export's imports:
``benchmarks/logged_model_cost.py``); ``finish`` waits for all of them.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

from .model_folder import ModelFolders

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

__all__ = ["ModelLog", "log_logged_model", "MODEL_NAME", "SEED_WEIGHTS"]

MODEL_NAME = "model"  # the LoggedModel's name, and its folder in the run page's "Logged models"
# a study trial's final weights of one seed, in the trial's run: what the best trial's networks
# are logged from at the study's end (trials log no model themselves)
SEED_WEIGHTS = "weights/seed{seed}.pt"
_log = logging.getLogger("grokexp.logged_model")


def log_logged_model(client: Any, experiment_id: str, run_id: str, module: nn.Module,
                     example: np.ndarray, step: int = 0, folders: ModelFolders | None = None,
                     kind: object | None = None) -> str:
    """Log ``module`` as a LoggedModel whose source run is ``run_id``, an output of that run
    at ``step`` (the run page lists it under "Logged models"); return its id. ``client`` is an
    ``MlflowClient`` of the store; the run may have ended.

    The model is saved to a scratch folder and its files uploaded through ``client``, so
    nothing here touches MLflow's process-wide tracking URI (which ``mlflow.pytorch.log_model``
    reads, and sets in the environment when told one). Made here, the model neither gets the
    run's params copied onto it nor every metric's history read to copy the metrics at
    ``step`` (0.4 s a model), nor is it loaded back to check its serving example (0.4 s).
    ``folders`` and ``kind``: see :meth:`ModelFolders.save` (networks of one kind are
    exported once)."""
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus

    model = client.create_logged_model(experiment_id, name=MODEL_NAME, source_run_id=run_id)
    try:
        with tempfile.TemporaryDirectory(prefix="grokexp-model-") as scratch:
            folder = os.path.join(scratch, MODEL_NAME)
            (folders or ModelFolders()).save(module, folder, example, kind)
            client.log_model_artifacts(model.model_id, folder)
    except BaseException:  # marked FAILED, so nobody loads a half-written model
        client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step)])
    return str(model.model_id)


class ModelSink(Protocol):
    """Where :class:`ModelLog` sends each network (the tracker's ``log_model``)."""

    def log_model(self, run_id: str, module: nn.Module, example: torch.Tensor,
                  step: int = 0, kind: object | None = None) -> None: ...


class ModelLog:
    """Networks waiting to be logged, logged one at a time by a background thread (started on
    the first one: nothing runs when no model is logged)."""

    def __init__(self, sink: ModelSink):
        self.sink = sink
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[tuple[str, Future[None]]] = []
        self.failed: list[str] = []  # "run id: why", for each network that was not logged

    def submit(self, run_id: str, module: nn.Module | Callable[[], nn.Module],
               example: torch.Tensor, step: int = 0, kind: object | None = None) -> None:
        """Log ``module`` (which the caller no longer changes) to ``run_id`` soon. A callable
        that makes the module is called on the background thread (building a module takes time,
        and draws a throw-away default init from torch's global generator). Modules of one
        ``kind`` (the population's architecture) are exported once (``model_folder.py``)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="grokexp-model-log")
        self._pending.append(
            (run_id, self._pool.submit(self._log, run_id, module, example, step, kind)))

    def _log(self, run_id: str, module: nn.Module | Callable[[], nn.Module],
             example: torch.Tensor, step: int, kind: object | None) -> None:
        import torch

        if not isinstance(module, torch.nn.Module):
            module = module()  # training and probes draw from their own generators only
        self.sink.log_model(run_id, module, example, step, kind)

    def finish(self) -> list[str]:
        """Every network submitted is logged (or its failure noted in ``failed``); the thread
        stops. Returns the run ids whose network was logged."""
        logged = self._wait(self._pending)
        self._pending = []
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        return logged

    def _wait(self, pending: Sequence[tuple[str, Future[None]]]) -> list[str]:
        logged = []
        for run_id, future in pending:
            try:
                future.result()
                logged.append(run_id)
            except Exception as err:  # a model not logged never fails the run: its weights are
                self.failed.append(f"{run_id}: {err}")  # in weights/final.pt all the same
                _log.warning("the network of run %s was not logged as a model: %s", run_id, err)
        return logged
