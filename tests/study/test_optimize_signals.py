"""SIGTERM and SIGINT end a `grokexp optimize` worker alike: its trial failed and queued
again, the trial's run KILLED, one line on stderr, exit 128 + the signal's number."""

from __future__ import annotations

import signal

import pytest
from conftest import stop_group, wait_until
from mlflow.tracking import MlflowClient
from optimize_helpers import OPT_TINY, load, worker
from optuna.trial import TrialState


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_requeues_the_trial_and_kills_its_run(sig, write_spec, tracking_uri,
                                                       tmp_path):
    spec = write_spec(OPT_TINY, "opt.toml")
    storage = str(tmp_path / "study.log")
    # a learning rate that never groks, over a long budget: the trial is mid-training
    args = [spec, "--storage", storage, "--tracking-uri", tracking_uri, "--n-trials", "1",
            "--batch", "1", "--set", "train.epochs=100000", "--set", "train.lr=1e-6",
            "--out", str(tmp_path)]
    proc = worker(args, tmp_path, start_new_session=True)

    def training():
        try:
            trials = load(storage).get_trials()
        except Exception:  # the study does not exist yet
            return None
        return next((t for t in trials if t.state == TrialState.RUNNING
                     and t.user_attrs.get("mlflow_run_id")), None)

    try:  # the state to act on: a trial running with its MLflow run
        trial = wait_until(training, 240, "a running trial with its MLflow run", proc,
                           poll_s=0.1)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            stop_group(proc)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"interrupted by {signal.Signals(sig).name}: "), err
    assert "queued again" in last and "KILLED" in last
    trials = load(storage).get_trials()
    assert trials[trial.number].state == TrialState.FAIL
    retry = [t for t in trials if t.user_attrs.get("retry_of") == trial.number]
    assert len(retry) == 1 and retry[0].state == TrialState.WAITING
    run = MlflowClient(tracking_uri=tracking_uri).get_run(trial.user_attrs["mlflow_run_id"])
    assert run.info.status == "KILLED" and run.data.tags["optuna.state"] == "FAIL"
