"""optuna-dashboard reads the study that `grokexp optimize` kept in its journal under mlruns/."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request

import pytest
from click.testing import CliRunner
from conftest import import_service, stop_group, wait_until
from mlflow.tracking import MlflowClient
from optimize_helpers import OPT_TINY, load
from optuna.trial import TrialState

from grokexp.cli import main


def _get(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.load(response)


def _studies(port: int):
    try:
        return _get(port, "/api/studies")["study_summaries"]
    except OSError:  # not listening yet
        return None


@pytest.fixture
def dashboard():
    """Start optuna-dashboard on a journal; stop it (and its group) afterwards."""
    import_service("optuna_dashboard", "optuna-dashboard is not installed (the dev extra)")
    started = []

    def start(journal, log):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with log.open("w") as out:  # a file, not a pipe: its output can never block it
            proc = subprocess.Popen(
                [sys.executable, "-c", "from optuna_dashboard._cli import main; main()",
                 str(journal), "--host", "127.0.0.1", "--port", str(port), "--quiet"],
                stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        started.append(proc)
        studies = wait_until(lambda: _studies(port), 60, "optuna-dashboard answering "
                             "/api/studies", proc, poll_s=0.2, log=log)
        return port, studies

    yield start
    for proc in started:
        stop_group(proc)


def test_optuna_dashboard_shows_the_study_grokexp_optimize_wrote(write_spec, tracking_uri,
                                                                 tmp_path, dashboard):
    spec = write_spec(OPT_TINY, "opt.toml")
    ran = CliRunner().invoke(main, ["optimize", spec, "--quiet", "--tracking-uri", tracking_uri,
                                    "--n-trials", "2", "--batch", "2", "--set",
                                    "train.epochs=30", "--out", str(tmp_path / "out")],
                             catch_exceptions=False)
    assert ran.exit_code == 0, ran.output
    journal = tmp_path / "mlruns" / "optuna.log"  # where `grokexp optimize` keeps its study
    assert journal.is_file(), "grokexp optimize wrote no journal beside the MLflow store"
    study = load(str(journal))
    ours = {t.number: t for t in study.get_trials()}
    assert [t.state for t in ours.values()] == [TrialState.COMPLETE] * 2

    client = MlflowClient(tracking_uri=tracking_uri)
    port, studies = dashboard(journal, tmp_path / "dashboard.log")
    assert [s["study_name"] for s in studies] == ["opt"]
    detail = _get(port, f"/api/studies/{studies[0]['study_id']}?after=0")
    shown = {t["number"]: t for t in detail["trials"]}
    assert sorted(shown) == sorted(ours)
    for number, trial in ours.items():
        seen = shown[number]
        assert seen["state"].upper() == "COMPLETE"
        assert seen["values"] == [trial.value]
        assert {p["name"]: p["param_internal_value"] for p in seen["params"]} == trial.params
        attrs = {a["key"]: a["value"] for a in seen["user_attrs"]}
        assert attrs["mlflow_run_id"] == trial.user_attrs["mlflow_run_id"]
        run = client.get_run(attrs["mlflow_run_id"])  # the dashboard's trial is grokexp's run
        assert run.data.tags["optuna.trial"] == str(number)
    # the study-level attributes grokexp keeps (the MLflow parent run) reach the dashboard too
    study_attrs = {a["key"]: a["value"] for a in detail["user_attrs"]}
    assert study_attrs["mlflow_parent_run_id"] == study.user_attrs["mlflow_parent_run_id"]
