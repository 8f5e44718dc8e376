"""`grokexp ui` checks its store before it hands over to the MLflow server, and passes the
server its allowed hosts.

A store the server cannot serve (an MLflow server's URL) or cannot reach would make the server
die with a traceback that quotes the URI, password and all: grokexp refuses it first, in one
line with the password masked (exit 2 for the URI, 1 for the store that does not answer).
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port, healthy, listening_addresses, stop_group, wait_until

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"):
        env.pop(name, None)
    return env


@pytest.mark.parametrize(("uri", "code", "secret"), [
    ("http://alice:S3cret/PW@127.0.0.1:{port}", 2, "S3cret/PW"),
    ("https://alice:pa ss-W0rd@mlflow.lab.org", 2, "pa ss-W0rd"),
    ("databricks://alice:tok3n-PW@workspace", 2, "tok3n-PW"),
    ("postgresql://bob:S3cret/PW@127.0.0.1:{port}/x", 1, "S3cret/PW"),
], ids=["http", "https", "other scheme", "postgres unreachable"])
def test_ui_refuses_a_store_it_cannot_serve_in_one_masked_line(uri, code, secret, tmp_path):
    port = free_port()
    uri = uri.format(port=free_port())
    proc = subprocess.Popen([sys.executable, "-m", "grokexp", "ui", "--tracking-uri", uri,
                             "--port", str(port)], env=_env(), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own group: nothing of it survives
    try:
        stdout, stderr = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        stop_group(proc)
        pytest.fail("grokexp ui handed over to a server that kept running")
    output = stdout + stderr
    assert proc.returncode == code, output
    assert stdout == "" and len(stderr.splitlines()) == 1, output
    assert "Traceback" not in output and ":***@" in output
    for piece in (secret, *secret.split("/"), *secret.split(" ")):
        assert piece not in output
    assert not listening_addresses(port)


def _status(port: int, host_header: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/api/2.0/mlflow/experiments/search?max_results=1",
                           headers={"Host": host_header})
        return connection.getresponse().status
    finally:
        connection.close()


def test_ui_passes_allowed_hosts_to_the_server(tracking_uri, tmp_path):
    port = free_port()
    log = tmp_path / "ui.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "grokexp", "ui", "--tracking-uri",
                                 tracking_uri, "--port", str(port), "--allowed-hosts",
                                 "grokexp.test:*,127.0.0.1:*"], env=_env(), cwd=tmp_path,
                                stdout=out, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
    try:
        wait_until(lambda: healthy(f"http://127.0.0.1:{port}"), 120,
                   "the MLflow server answering /health", proc, log=log)
        assert _status(port, f"grokexp.test:{port}") == 200, log.read_text()
        assert _status(port, f"127.0.0.1:{port}") == 200
        assert _status(port, f"elsewhere.test:{port}") == 403  # MLflow's check still holds
    finally:
        stop_group(proc)
