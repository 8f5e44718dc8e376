"""`grokexp ui` owns its server: a SIGTERM or SIGINT to grokexp alone ends the MLflow server.

The signal goes to the grokexp process only (as from a supervisor or `kill PID`), never to
its process group; afterwards nothing may listen on the port and no process of the group may
be left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port, healthy, listening_addresses, stop_group, wait_until

REPO = Path(__file__).resolve().parents[2]


def _group(pgid: int) -> dict[int, str]:
    """Live (not zombie) processes of process group ``pgid``: pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # it ended while we looked
            continue
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == pgid and state not in ("Z", "X"):
            found[int(entry.name)] = cmdline.strip()
    return found


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_grokexp_ui_ends_its_server(sig, tracking_uri, tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"):
        env.pop(name, None)  # grokexp's own defaults
    log = tmp_path / "ui.log"  # a file, not a pipe: the server's chatter can never block it
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "grokexp", "ui", "--tracking-uri",
                                 tracking_uri, "--port", str(port)], env=env, cwd=tmp_path,
                                stdout=out, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)  # its own group, to look into after
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: healthy(url), 120, "the MLflow server answering /health", proc,
                   log=log)
        text = log.read_text()
        assert f"MLflow UI over {tracking_uri} at http://127.0.0.1:{port}\n" in text
        assert f"  (no runs yet) http://127.0.0.1:{port}/\n" in text
        assert _group(proc.pid), "the server's processes are in grokexp's group"
        os.kill(proc.pid, sig)  # grokexp alone, as a supervisor or `kill` would
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"grokexp ui still running 60 s after {sig.name}:\n{log.read_text()}")
        assert not listening_addresses(port), f"the port is still held after {sig.name}"
        assert not healthy(f"http://127.0.0.1:{port}")
        left = _group(proc.pid)
        assert not left, f"survivors of {sig.name}: {left}"
        # the server stopped cleanly (it passed the signal on), before grokexp's process ended
        assert proc.returncode == 0 and "Traceback" not in log.read_text(), log.read_text()
    finally:
        stop_group(proc)  # whatever survived: our own group only
