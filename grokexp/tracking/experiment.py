"""The experiment a tracker writes to: found or created, and tagged, by racing workers.

Workers started together on a fresh store may race to create the experiment and to set its
kind tag; the loser of either race finds the winner's on looking again. Also here: MLflow's
own logging of failed SQL statements, quieted, since the tracker reports a store's failure
in one line itself.
"""

from __future__ import annotations

import logging
from typing import Any

from .redact import one_line
from .retry import Backoff, retry
from .store import store_error
from .tracker import EXPERIMENT_KIND_TAG, artifact_root_for

__all__ = ["open_experiment", "quiet_store_errors"]


def open_experiment(client: Any, tracking_uri: str, name: str) -> str:
    """The id of the experiment ``name`` (made if it is not there), with its kind tag; any
    failure of the store is one line naming it."""
    try:
        experiment_id = _experiment_id(client, tracking_uri, name)
        _tag_experiment(client, experiment_id)
    except Exception as err:  # the store's own exception types vary by backend
        raise store_error(tracking_uri, one_line(err)) from None
    return experiment_id


def _experiment_id(client: Any, tracking_uri: str, name: str) -> str:
    """Find or create the experiment; workers started together may race to create it,
    and the loser of that race finds the winner's experiment on looking again."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(
            name, artifact_location=artifact_root_for(tracking_uri)))
    except Exception:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def _tag_experiment(client: Any, experiment_id: str) -> None:
    """Set the experiment-kind tag unless it is there: workers that found a brand-new
    experiment at once may race to tag it (a unique-key violation over PostgreSQL), and
    the loser finds the winner's tag on looking again (3 tries, 0.2 and 0.4 s apart)."""
    key, value = EXPERIMENT_KIND_TAG

    def tag() -> None:
        if client.get_experiment(experiment_id).tags.get(key) != value:
            client.set_experiment_tag(experiment_id, key, value)

    retry(tag, Backoff(first_s=0.2, attempts=3))


def _not_store_errors(record: logging.LogRecord) -> bool:
    """MLflow logs every failed SQL statement with its traceback (dozens of lines on stderr
    per write while a disk is full); the tracker retries, journals and reports it in one
    line itself."""
    return not str(record.msg).startswith("SQLAlchemy database error")


def quiet_store_errors() -> None:
    store_log = logging.getLogger("mlflow.store.db.utils")
    if _not_store_errors not in store_log.filters:
        store_log.addFilter(_not_store_errors)
