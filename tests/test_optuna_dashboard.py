"""optuna-dashboard reads the embedded Optuna storage: a journal file under mlruns/."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest


def test_optuna_dashboard_lists_the_studies_of_the_journal(tmp_path):
    pytest.importorskip("optuna_dashboard",
                        reason="optuna-dashboard is not installed (pip install optuna-dashboard;"
                               " tests/services/browser.sh installs it)")
    import optuna
    from optuna.storages.journal import JournalFileBackend

    journal = tmp_path / "mlruns" / "optuna.log"  # where `grokexp optimize` keeps its study
    journal.parent.mkdir()
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.create_study(study_name="shift-wd", storage=storage,
                                sampler=optuna.samplers.RandomSampler(seed=0))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(lambda t: (t.suggest_float("init.shift", -0.2, 1.8) - 0.6) ** 2, n_trials=3)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from optuna_dashboard._cli import main; main()", str(journal),
         "--host", "127.0.0.1", "--port", str(port), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies",
                                            timeout=2) as response:
                    studies = json.load(response)["study_summaries"]
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()[0]
                assert time.monotonic() < deadline, "optuna-dashboard did not come up"
                time.sleep(0.5)
        assert [s["study_name"] for s in studies] == ["shift-wd"]
        study_id = studies[0]["study_id"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{study_id}"
                                    "?after=0", timeout=10) as response:
            detail = json.load(response)
        values = sorted(t["values"][0] for t in detail["trials"])
        assert values == sorted(t.value for t in study.trials)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
