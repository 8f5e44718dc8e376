"""Several `grokexp optimize` processes on one study: shared, resumable, nothing lost."""

from __future__ import annotations

import signal

from conftest import wait_until
from mlflow.tracking import MlflowClient
from optimize_helpers import OPT_TINY, load, two_workers, worker
from optuna.trial import TrialState


def test_two_workers_share_one_journal_study(write_spec, tracking_uri, tmp_path):
    spec = write_spec(OPT_TINY, "opt.toml")
    facts = two_workers(spec, str(tmp_path / "study.log"), tracking_uri, tmp_path)
    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name("opt")
    parents = client.search_runs([exp.experiment_id], "tags.`grokexp.role` = 'study'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert facts["study"].user_attrs["mlflow_parent_run_id"] == parents[0].info.run_id


def test_a_killed_worker_is_resumed_and_its_trial_requeued(write_spec, tracking_uri, tmp_path):
    spec = write_spec(OPT_TINY, "opt.toml")
    storage = str(tmp_path / "study.log")
    args = [spec, "--storage", storage, "--tracking-uri", tracking_uri, "--n-trials", "3",
            "--batch", "1", "--set", "train.epochs=1000", "--set", "optimize.grace_s=2",
            "--set", "optimize.heartbeat_s=0.5", "--out", str(tmp_path)]
    proc = worker(args, tmp_path)

    def one_complete_one_running():
        try:
            trials = load(storage).get_trials()
        except Exception:  # the study does not exist yet
            return None
        running = [t for t in trials if t.state == TrialState.RUNNING and t.params
                   and t.user_attrs.get("mlflow_run_id")]
        if any(t.state == TrialState.COMPLETE for t in trials) and running:
            return running[0]
        return None

    try:  # the state to act on: a trial complete, another running with its MLflow run
        killed = wait_until(one_complete_one_running, 240,
                            "a complete trial and a running one with its MLflow run", proc,
                            poll_s=0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
    before = {t.number: t.value for t in load(storage).get_trials()
              if t.state == TrialState.COMPLETE}
    rerun = worker(args, tmp_path)
    try:
        out, err = rerun.communicate(timeout=300)
    finally:
        if rerun.poll() is None:
            rerun.kill()
            rerun.communicate(timeout=30)
    assert rerun.returncode == 0, err
    assert f"trial {killed.number}: its worker stopped; failed and queued again" in err
    trials = load(storage).get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3
    assert {t.number: t.value for t in complete if t.number in before} == before
    stale = trials[killed.number]
    assert stale.state == TrialState.FAIL and stale.user_attrs["stale"] is True
    retry = [t for t in trials if t.user_attrs.get("retry_of") == killed.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].params == killed.params
    run = MlflowClient(tracking_uri=tracking_uri).get_run(killed.user_attrs["mlflow_run_id"])
    assert run.info.status == "KILLED"
