"""Finding the checkpoint of an interrupted run and checking it can go on.

``grokexp run --resume RUN_ID`` accepts the run the interruption message named, or any child
of a sweep (its parent holds the checkpoint).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import GrokexpError, NotFound, is_not_found
from .checkpoint import CHECKPOINT_ARTIFACT, Checkpoint, load_checkpoint
from .redact import redact_text

__all__ = ["find_checkpoint"]


def find_checkpoint(tracking_uri: str, run_id: str) -> tuple[Checkpoint, str]:
    """The checkpoint logged on ``run_id`` (or its parent) and the experiment's name."""
    from .store import open_client

    client = open_client(tracking_uri)
    try:
        run = client.get_run(run_id)
    except Exception as err:  # not found, or the store is down
        if is_not_found(err):
            raise NotFound(f"--resume {run_id}: no such run in the store") from None
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise GrokexpError(f"--resume {run_id}: {redact_text(first)}") from None
    parent = run.data.tags.get("mlflow.parentRunId")
    if parent and "grokexp.checkpoint_epoch" not in run.data.tags:
        run = client.get_run(parent)
    if "grokexp.checkpoint_epoch" not in run.data.tags:
        raise GrokexpError(f"--resume {run_id}: this run has no checkpoint "
                           f"(status {run.info.status}); only interrupted runs can resume")
    if run.info.status in ("FINISHED", "FAILED"):
        raise GrokexpError(f"--resume {run_id}: run {run.info.run_id} is {run.info.status}; "
                           "it was resumed to its end already")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(run.info.run_id, CHECKPOINT_ARTIFACT, tmp)
        except Exception as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise GrokexpError(f"--resume {run_id}: cannot read {CHECKPOINT_ARTIFACT}: "
                               f"{redact_text(first)}") from None
        checkpoint = load_checkpoint(Path(local))
    experiment = client.get_experiment(run.info.experiment_id)
    return checkpoint, experiment.name
