"""Finding the checkpoint of an interrupted run, checking it can go on, and claiming it.

``grokexp run --resume RUN_ID`` accepts the run the interruption message named, or any child
of a sweep (its parent holds the checkpoint).

One writer per run, the rule: a run that is RUNNING is not resumed (another grokexp trains
it, or one was killed before it could end it: ``--force`` takes it over then). Two resumes
started at once may both find it KILLED; each then claims the checkpoint with
:func:`claim_resume`, which logs the param ``grokexp.resume.<checkpoint id>`` = a token of
its own. MLflow never lets a param change its value (sqlite, PostgreSQL and a tracking
server alike refuse it in one transaction), so exactly one token is ever stored: the
process whose token it is trains, the other stops. Each checkpoint gets a new id (the tag
``grokexp.checkpoint_id``), so every interruption can be resumed once.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import GrokexpError, NotFound
from .checkpoint import CHECKPOINT_ARTIFACT, Checkpoint, load_checkpoint
from .reader import RunNotFound, RunReader, StoreReadError, TrackedRun
from .redact import one_line

__all__ = ["find_checkpoint", "claim_resume", "CHECKPOINT_ID_TAG", "RESUMED_BY_TAG"]

CHECKPOINT_ID_TAG = "grokexp.checkpoint_id"
RESUMED_BY_TAG = "grokexp.resumed_by"
_CLAIM_PARAM = "grokexp.resume."


def _check_status(run: TrackedRun, run_id: str, force: bool) -> None:
    root, status = run.run_id, run.status
    if status in ("FINISHED", "FAILED"):
        raise GrokexpError(f"--resume {run_id}: run {root} is {status}; "
                           "it was resumed to its end already")
    if status == "RUNNING" and not force:
        raise GrokexpError(f"--resume {run_id}: run {root} is RUNNING: another grokexp is "
                           "training it (or was killed before it could end it: then add "
                           "--force)")


def find_checkpoint(tracking_uri: str, run_id: str,
                    force: bool = False) -> tuple[Checkpoint, str]:
    """The checkpoint logged on ``run_id`` (or its parent) and the experiment's name.

    Refuses a run that is RUNNING unless ``force`` (see the module's rule).
    """
    reader = RunReader.open(tracking_uri)
    try:
        run = reader.run(run_id)
        if run.parent_id and "grokexp.checkpoint_epoch" not in run.tags:
            run = reader.run(run.parent_id)
    except RunNotFound:
        raise NotFound(f"--resume {run_id}: no such run in the store") from None
    except StoreReadError as err:  # the store is down
        raise GrokexpError(f"--resume {run_id}: {err.detail}") from None
    if "grokexp.checkpoint_epoch" not in run.tags:
        raise GrokexpError(f"--resume {run_id}: this run has no checkpoint "
                           f"(status {run.status}); only interrupted runs can resume")
    _check_status(run, run_id, force)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = reader.download(run.run_id, CHECKPOINT_ARTIFACT, Path(tmp))
        except StoreReadError as err:
            raise GrokexpError(f"--resume {run_id}: cannot read {CHECKPOINT_ARTIFACT}: "
                               f"{err.detail}") from None
        checkpoint = load_checkpoint(local)
    tagged = run.tags["grokexp.checkpoint_epoch"]
    if str(checkpoint.epoch) != tagged:  # the newer one was never written (a full disk)
        raise GrokexpError(f"--resume {run_id}: run {run.run_id} says it stopped after "
                           f"epoch {tagged} but its {CHECKPOINT_ARTIFACT} is from epoch "
                           f"{checkpoint.epoch}: resuming would repeat logged epochs")
    return checkpoint, reader.experiment_name(run)


def claim_resume(tracking_uri: str, run_id: str, root_run_id: str, token: str,
                 force: bool = False, expected_epoch: int | None = None) -> None:
    """Claim the checkpoint on ``root_run_id`` for this process (``token``), or raise.

    Called once nothing else can refuse the resume, just before training: the run's status
    is checked again, the claim param logged and read back, then the run is set RUNNING with
    the tag ``grokexp.resumed_by`` = ``token``. ``force`` takes over a RUNNING run or a
    claim left by a process that died, with a claim of its own. ``expected_epoch`` is the
    epoch of the checkpoint this process read: if the run's checkpoint has changed since
    (another resume trained on and was interrupted), the claim is refused.
    """
    from mlflow.entities import Param

    from .store import open_client

    client = open_client(tracking_uri)  # the claim's writes are its own: never retried
    reader = RunReader(client, tracking_uri)
    try:
        run = reader.run(root_run_id)
        _check_status(run, run_id, force)
        tags = run.tags
        if expected_epoch is not None and tags.get("grokexp.checkpoint_epoch") != str(
                expected_epoch):
            raise GrokexpError(f"--resume {run_id}: run {root_run_id}'s checkpoint changed "
                               "since it was read (another resume trained on): run the "
                               "command again to go on from the new one")
        key = _CLAIM_PARAM + (tags.get(CHECKPOINT_ID_TAG)
                              or f"epoch-{tags.get('grokexp.checkpoint_epoch', '')}")
        if force:
            key += f".{token}"
        try:
            client.log_batch(root_run_id, params=[Param(key, token)])
        except Exception:  # refused because another token is there, or the store failed
            if reader.run(root_run_id).params.get(key) in (None, token):
                raise
        held = reader.run(root_run_id).params.get(key)
        if held != token:
            raise GrokexpError(f"--resume {run_id}: run {root_run_id} was claimed by another "
                               "grokexp run --resume at the same time; that one trains, this "
                               "one stops (if that process is gone, add --force)")
        client.set_tag(root_run_id, RESUMED_BY_TAG, token)
        client.update_run(root_run_id, status="RUNNING")
    except (RunNotFound, StoreReadError) as err:  # the reader's one line of the store's error
        raise GrokexpError(f"--resume {run_id}: {err.detail}") from None
    except GrokexpError:
        raise
    except Exception as err:  # the store's own exception types vary by backend
        raise GrokexpError(f"--resume {run_id}: {one_line(err)}") from None
