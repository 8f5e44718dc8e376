"""Interrupt and resume: the loop's own state, then a real process killed by a signal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import read_until
from mlflow.tracking import MlflowClient

from grokexp.cli import main
from grokexp.engine.sweep import expand_members
from grokexp.engine.train import Hook, Interrupted
from grokexp.run.runner import train_group
from grokexp.spec.io import load_spec
from grokexp.tracking.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

CPU = torch.device("cpu")
SPEC = """
name = "resume"
[task]
modulus = 13
[model]
embedding_dim = 12
hidden = 24
[train]
epochs = 30
lr = 1e-2
batch_size = 16
dropout = 0.1
[metrics]
every = 4
"""


def _members(extra: str = "", overrides=()):
    return expand_members(load_spec(SPEC + extra, "r.toml", overrides))


def _interrupt_at(epoch: int):
    """A should_stop that says yes once the loop has finished ``epoch`` epochs."""
    calls = {"n": -1}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] >= epoch

    return should_stop


@pytest.mark.parametrize("stop_epoch", [0, 7, 12])
def test_resumed_population_matches_uninterrupted_bitwise(stop_epoch, tmp_path):
    # members leave at different times (one generalises early): the state must follow
    grid = _members('[sweep]\nseeds = [0, 1]\n"train.weight_decay" = [0.5, 1.0]\n',
                    ["train.stop_after_generalized=0", "metrics.grok_threshold=0.2"])
    whole = train_group(grid, CPU, [])
    with pytest.raises(Interrupted) as stopped:
        train_group(grid, CPU, [], should_stop=_interrupt_at(stop_epoch))
    state = stopped.value.state
    assert state.epoch == stop_epoch
    # through a file, as a real checkpoint travels, loaded with weights_only=True
    checkpoint = Checkpoint("spec", "hash", None, {m.index: str(m.index) for m in grid}, 0,
                            state)
    save_checkpoint(checkpoint, tmp_path / "c.pt")
    torch.load(tmp_path / "c.pt", weights_only=True)
    restored = load_checkpoint(tmp_path / "c.pt").state
    resumed = train_group(grid, CPU, [], resume=restored)
    assert [m.index for m in resumed.members] == [m.index for m in whole.members]
    for a, b in zip(whole.members, resumed.members, strict=True):
        assert (a.epochs, a.metrics, a.status) == (b.epochs, b.metrics, b.status)
        assert (a.train_grok_epoch, a.test_grok_epoch) == (b.train_grok_epoch,
                                                           b.test_grok_epoch)


def test_damaged_or_foreign_checkpoints_are_refused(tmp_path):
    from grokexp.errors import GrokexpError

    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(GrokexpError, match="not a grokexp checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")

    class Evil:  # pickling an object: weights_only loading must refuse to build it
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    torch.save({"format": 1, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(GrokexpError, match="not a grokexp checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


class FinalWeights(Hook):
    """Keeps each member's final parameters."""

    def __init__(self) -> None:
        self.states: dict[int, dict[str, torch.Tensor]] = {}

    def on_member_end(self, member, history, state) -> None:
        self.states[member.index] = state


def _spawn(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen([sys.executable, "-m", "grokexp", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _history(client: MlflowClient, run_id: str) -> dict[str, list[tuple[int, float]]]:
    return {key: [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
            for key in ("train_acc", "test_acc", "train_loss", "test_loss")}


LONG = SPEC.replace("epochs = 30", "epochs = 150").replace("every = 4", "every = 10")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_killed_process_checkpoints_and_resumes_to_the_same_history(sig, write_spec,
                                                                    tracking_uri, tmp_path):
    spec = write_spec(LONG + '[sweep]\nseeds = [0, 1]\n', "long.toml")
    proc = _spawn(["run", spec, "--tracking-uri", tracking_uri], tmp_path)
    assert proc.stderr is not None
    # the state to act on: the progress line of epoch 0, printed once that epoch is evaluated
    # (the signal handlers are in place before it); 150 epochs remain, so the signal lands
    # mid-run whatever the machine's speed
    _, seen = read_until(proc, proc.stderr, lambda line: line.startswith("epoch "), 120,
                         "the progress line of epoch 0")
    proc.send_signal(sig)
    out, rest = proc.communicate(timeout=120)
    err = seen + rest
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err
    resume_line = next(line for line in err.splitlines() if "--resume" in line)
    root = resume_line.split("--resume ")[1].split()[0]
    client = MlflowClient(tracking_uri=tracking_uri)
    parent = client.get_run(root)
    epoch = int(parent.data.tags["grokexp.checkpoint_epoch"])
    assert 0 <= epoch < 150, "the signal should land mid-run"
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{root}'")
    assert {c.info.status for c in [parent, *children]} == {"KILLED"}
    for child in children:  # metrics up to the last evaluation before the stop are there
        steps = [s for s, _ in _history(client, child.info.run_id)["test_acc"]]
        assert steps == list(range(0, epoch + 1, 10))
    local = client.download_artifacts(root, "checkpoint/checkpoint.pt", str(tmp_path))
    assert torch.load(local, weights_only=True)["state"]["epoch"] == epoch
    if sig == signal.SIGINT:
        return  # one full resume (below, SIGTERM) is enough to pay for
    resumed = CliRunner().invoke(main, ["run", "--resume", children[0].info.run_id,
                                        "--tracking-uri", tracking_uri, "--json"])
    assert resumed.exit_code == 0, resumed.output
    out_json = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert out_json["parent_run_id"] == root
    # the same members trained without interruption (and without MLflow), in this process
    finals = FinalWeights()
    reference = train_group(expand_members(load_spec(Path(spec).read_text(), spec)), CPU,
                            [finals])
    for member in out_json["members"]:
        expected = reference.by_index(member["index"])
        history = _history(client, member["run_id"])
        for key, logged in history.items():
            assert logged == list(zip(expected.epochs, expected.metrics[key], strict=True))
        assert client.get_run(member["run_id"]).info.status == "FINISHED"
        weights = torch.load(client.download_artifacts(
            member["run_id"], "weights/final.pt", str(tmp_path / member["run_id"])),
            weights_only=True)
        assert weights.keys() == finals.states[member["index"]].keys()
        assert all(torch.equal(weights[k], finals.states[member["index"]][k]) for k in weights)
    assert client.get_run(root).info.status == "FINISHED"
    again = CliRunner().invoke(main, ["run", "--resume", root, "--tracking-uri", tracking_uri])
    assert again.exit_code == 1 and "FINISHED" in again.output


def test_resume_arguments_are_checked(write_spec, tracking_uri):
    runner = CliRunner()
    bogus = runner.invoke(main, ["run", "--resume", "0123abcd", "--tracking-uri",
                                 tracking_uri])
    assert bogus.exit_code == 2  # a run id the store does not hold is bad input
    assert bogus.output.startswith("error: --resume 0123abcd: ") and "Traceback" not in (
        bogus.output)
    both = runner.invoke(main, ["run", write_spec(), "--resume", "0123abcd"])
    assert both.exit_code == 2 and "takes the spec from the checkpoint" in both.output
    neither = runner.invoke(main, ["run"])
    assert neither.exit_code == 2 and "missing SPEC_FILE" in neither.output
    finished = runner.invoke(main, ["run", write_spec(), "--tracking-uri", tracking_uri,
                                    "--json"])
    run_id = json.loads(finished.stdout.strip().splitlines()[-1])["run_ids"][0]
    again = runner.invoke(main, ["run", "--resume", run_id, "--tracking-uri", tracking_uri])
    assert again.exit_code == 1 and "has no checkpoint" in again.output
