"""One writer per run: two `grokexp run --resume` of one run never both train it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import read_until, stop_group
from mlflow.tracking import MlflowClient

from grokexp.cli import main
from grokexp.engine.sweep import expand_members
from grokexp.errors import GrokexpError, RunInterrupted
from grokexp.run.runner import run_experiment
from grokexp.spec.io import load_spec
from grokexp.tracking.mlflow_tracker import MlflowTracker

# long enough that a resume is still training whenever the test looks
SPEC = """
name = "writer"
[task]
modulus = 11
[model]
embedding_dim = 8
hidden = 16
[train]
epochs = 100000
lr = 1e-2
batch_size = 32
[metrics]
every = 10
[sweep]
seeds = [0, 1]
"""


def _interrupted(uri: str) -> str:
    """A sweep interrupted after epoch 3, its checkpoint in the store: the root run id."""
    spec = load_spec(SPEC, "writer.toml")
    tracker = MlflowTracker(uri, spec.name)
    calls = iter(range(10**9))
    with pytest.raises(RunInterrupted) as stopped:
        run_experiment(spec, expand_members(spec), tracker,
                       should_stop=lambda: next(calls) >= 3)
    return stopped.value.root_run_id


def _spawn(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
           "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "grokexp", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            stop_group(proc)


def test_a_second_resume_of_a_run_being_resumed_is_refused(tracking_uri, tmp_path):
    root = _interrupted(tracking_uri)
    args = ["run", "--resume", root, "--tracking-uri", tracking_uri]
    first = _spawn(args, tmp_path)
    try:
        assert first.stderr is not None
        # the state to act on: the first resume has claimed the run and trains it
        _, seen = read_until(first, first.stderr, lambda line: line.startswith("epoch "), 120,
                             "a progress line of the first resume")
        second = _spawn(args, tmp_path)
        out, err = _finish(second)  # bounded: a second writer would train 100000 epochs
        assert second.returncode == 1, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "RUNNING" in lines[0] and "--force" in lines[0], err
        assert "Traceback" not in err and out == ""
        first.send_signal(signal.SIGTERM)
        _, rest = _finish(first)
    finally:
        if first.poll() is None:
            stop_group(first)
    assert first.returncode == 143, seen + rest
    client = MlflowClient(tracking_uri=tracking_uri)
    parent = client.get_run(root)
    assert parent.info.status == "KILLED" and "grokexp.resumed_by" in parent.data.tags
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{root}'")
    for child in children:  # one writer: every evaluation logged once
        steps = Counter(m.step for m in client.get_metric_history(child.info.run_id,
                                                                  "test_acc"))
        assert steps and max(steps.values()) == 1, steps


def test_two_claims_of_one_checkpoint_leave_one_winner(tracking_uri):
    from grokexp.tracking.resume import claim_resume

    root = _interrupted(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    claim_resume(tracking_uri, root, root, "a" * 32)
    assert client.get_run(root).info.status == "RUNNING"
    # the race: the second process read the run KILLED before the first one's claim landed
    client.update_run(root, "KILLED")
    with pytest.raises(GrokexpError, match="claimed by another grokexp run --resume"):
        claim_resume(tracking_uri, root, root, "b" * 32)
    assert client.get_run(root).data.tags["grokexp.resumed_by"] == "a" * 32
    # a process that died with the claim: --force takes it over
    claim_resume(tracking_uri, root, root, "c" * 32, force=True)
    run = client.get_run(root)
    assert run.data.tags["grokexp.resumed_by"] == "c" * 32 and run.info.status == "RUNNING"


def test_a_claim_of_a_checkpoint_that_changed_since_it_was_read_is_refused(tracking_uri):
    """Process B read checkpoint C1; A resumed, was interrupted again and wrote C2: B must
    not win a claim on C2 and train from C1."""
    from grokexp.tracking.resume import claim_resume

    root = _interrupted(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    read_epoch = int(client.get_run(root).data.tags["grokexp.checkpoint_epoch"])
    client.set_tag(root, "grokexp.checkpoint_epoch", str(read_epoch + 10))  # A's newer one
    client.set_tag(root, "grokexp.checkpoint_id", "another-checkpoint")
    with pytest.raises(GrokexpError, match="checkpoint changed since it was read"):
        claim_resume(tracking_uri, root, root, "b" * 32, expected_epoch=read_epoch)
    assert client.get_run(root).info.status == "KILLED"
    claim_resume(tracking_uri, root, root, "b" * 32, expected_epoch=read_epoch + 10)


def test_a_checkpoint_older_than_the_run_says_is_not_resumed(tracking_uri):
    """A tag naming an epoch whose checkpoint was never written (a full disk) would make a
    resume repeat logged epochs: one line, nothing trained."""
    root = _interrupted(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    epoch = int(client.get_run(root).data.tags["grokexp.checkpoint_epoch"])
    client.set_tag(root, "grokexp.checkpoint_epoch", str(epoch + 5))
    result = CliRunner().invoke(main, ["run", "--resume", root, "--tracking-uri", tracking_uri])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        f"error: --resume {root}: run {root} says it stopped after epoch {epoch + 5} but its "
        f"checkpoint/checkpoint.pt is from epoch {epoch}: resuming would repeat logged epochs"]
    assert client.get_run(root).info.status == "KILLED"
