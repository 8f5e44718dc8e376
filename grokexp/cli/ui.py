"""The shell side of ``grokexp ui``: links to each experiment, then the MLflow server.

Kept out of commands.py so that it stays a thin table of commands; like it, this is a door in
from the shell (it reads the environment, prints, and hands the terminal to the server).

The server replaces this process (``exec``) rather than running as its child, so that the
process a supervisor, ``kill`` or a closed terminal signals *is* the server: SIGTERM or SIGINT
ends it (``mlflow server`` passes the signal on to its workers and waits for them) instead of
leaving it orphaned and holding the port.
"""

from __future__ import annotations

import os
import sys

import click

from ..errors import GrokexpError, NotFound, SpecError
from .common import resolve_tracking_uri, store_label

__all__ = ["do_ui", "experiment_links", "check_servable"]


def experiment_links(uri: str, host: str, port: int, experiment: str | None) -> list[str]:
    """Links that open each experiment's runs in the model-training (not GenAI) view."""
    from ..tracking.store import open_client

    client = open_client(uri)  # creates a fresh store's schema, once across processes
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    links = []
    for exp in client.search_experiments(order_by=["creation_time DESC"]):
        if experiment is not None and exp.name != experiment:
            continue
        if exp.name == "Default" and experiment is None:
            continue
        links.append(f"{exp.name}: http://{shown}:{port}/#/experiments/{exp.experiment_id}"
                     f"/runs?workflowType=machine_learning")
    return links


_SERVABLE = ("sqlite", "postgresql", "postgres", "mysql", "mssql", "file")


def check_servable(uri: str) -> None:
    """Refuse, before the server is started, a store that ``mlflow server`` cannot serve:
    exit 2 for a URI that names no database or folder (an MLflow server already, say), exit 1
    for a store that does not answer. Each as one line, the password masked: the server
    itself would die with a traceback that quotes the URI."""
    from ..tracking.redact import redact_uri
    from ..tracking.store import check_store
    from ..tracking.tracker import store_scheme

    scheme = store_scheme(uri) if "://" in uri else "file"
    if scheme in ("http", "https"):
        raise SpecError([f"--tracking-uri {redact_uri(uri)}: an MLflow server already; open it "
                         "in a browser (grokexp ui serves a database or a folder)"])
    if scheme not in _SERVABLE:
        raise SpecError([f"--tracking-uri {redact_uri(uri)}: grokexp ui serves a database "
                         f"({', '.join(_SERVABLE[:-1])}) or a folder, not {scheme}://"])
    if scheme not in ("sqlite", "file"):  # a database server: reachable? (sqlite: opened below)
        check_store(uri)


def do_ui(tracking_uri: str | None, host: str, port: int, experiment: str | None,
          workers: int = 1, allowed_hosts: str | None = None) -> None:
    from ..tracking.redact import redact_uri
    from ..tracking.tracker import artifact_root_for, sqlite_path

    uri = resolve_tracking_uri(tracking_uri)
    shown_uri = store_label(uri)
    check_servable(uri)
    if (db := sqlite_path(uri)) is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    try:
        links = experiment_links(uri, host, port, experiment)
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise GrokexpError(f"tracking store {shown_uri}: {redact_uri(first)}") from None
    if experiment is not None and not links:
        raise NotFound(f"no experiment named {experiment!r} in {shown_uri}")
    click.echo(f"MLflow UI over {shown_uri} at http://{host}:{port}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: --host {host} makes the UI reachable from other machines; "
                   "MLflow's UI has no login", err=True)
        if allowed_hosts is None:
            click.echo("note: MLflow answers only Host headers of localhost and private "
                       "addresses; add --allowed-hosts NAME[:PORT],... for others", err=True)
    for link in links or [f"(no runs yet) http://{host}:{port}/"]:
        click.echo(f"  {link}")
    # The store URI travels in the environment, not argv: `ps` would show a password.
    env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": uri}
    # MLflow's job runner (GenAI judges and trace roll-ups, a pool of huey processes) has
    # nothing to do for training runs; without it the server is one process and its uvicorn
    # child, and a signal ends both at once. MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true brings
    # it back.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    command = [sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port),
               "--workers", str(workers)]
    if allowed_hosts is not None:
        command += ["--allowed-hosts", allowed_hosts]
    root = artifact_root_for(uri)
    if root:
        command += ["--default-artifact-root", root]
    sys.stdout.flush()
    sys.stderr.flush()
    try:  # the server takes this process's place: same pid, same signals, same exit status
        os.execve(sys.executable, command, env)
    except OSError as err:
        raise GrokexpError(f"cannot start the MLflow server ({err.strerror or err})") from None
