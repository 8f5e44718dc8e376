"""`grokexp relog`: a folder is replayed once, by one process, and only if every entry is
sound; a journal cannot take a run anywhere grokexp itself would not."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from grokexp.cli import main
from grokexp.tracking.recovery import Journal


def _open_run(client: MlflowClient) -> str:
    """A run left RUNNING, as a store that failed mid-run leaves it."""
    experiment = client.create_experiment("relog")
    return client.create_run(experiment).info.run_id


def _folder(tmp_path: Path, uri: str, run_id: str) -> Journal:
    """What the tracker journals for an interrupted run: metrics, checkpoint, tag, end."""
    journal = Journal.create(tmp_path / "rec", uri, "the store went away")
    journal.metrics(run_id, [("test_acc", 0.5, 1000, 10)])
    checkpoint = tmp_path / "checkpoint.pt"
    checkpoint.write_bytes(b"the checkpoint of epoch 10")
    journal.artifact(run_id, checkpoint, "checkpoint")
    journal.tags(run_id, {"grokexp.checkpoint_epoch": "10"})
    journal.end(run_id, "KILLED")
    return journal


def _relog(folder: Path, uri: str):
    return CliRunner().invoke(main, ["relog", str(folder), "--tracking-uri", uri])


def test_a_relogged_folder_is_not_replayed(tracking_uri, tmp_path):
    client = MlflowClient(tracking_uri=tracking_uri)
    run_id = _open_run(client)
    folder = _folder(tmp_path, tracking_uri, run_id).folder
    first = _relog(folder, tracking_uri)
    assert first.exit_code == 0, first.output
    assert client.get_run(run_id).info.status == "KILLED"
    # then the run is resumed to its end: a later epoch, a new checkpoint, FINISHED
    client.log_batch(run_id, metrics=[Metric("test_acc", 0.9, 2000, 20)])
    client.set_tag(run_id, "grokexp.checkpoint_epoch", "20")
    client.set_terminated(run_id, "FINISHED")
    again = _relog(folder, tracking_uri)
    assert again.exit_code == 0, again.output
    lines = again.output.strip().splitlines()
    assert len(lines) == 1 and "re-logged already" in lines[0] and "nothing written" in lines[0]
    run = client.get_run(run_id)  # nothing rolled back
    assert run.info.status == "FINISHED"
    assert run.data.tags["grokexp.checkpoint_epoch"] == "20"
    assert [m.step for m in client.get_metric_history(run_id, "test_acc")] == [10, 20]


def test_a_folder_another_relog_is_replaying_is_left_to_it(tracking_uri, tmp_path):
    client = MlflowClient(tracking_uri=tracking_uri)
    run_id = _open_run(client)
    folder = _folder(tmp_path, tracking_uri, run_id).folder
    with (folder / "journal.jsonl").open("rb") as held:  # as a relog under way holds it
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        second = _relog(folder, tracking_uri)
    assert second.exit_code == 1, second.output
    lines = second.output.strip().splitlines()
    assert len(lines) == 1 and "another grokexp relog is replaying" in lines[0]
    assert client.get_run(run_id).info.status == "RUNNING"  # nothing written
    assert client.get_metric_history(run_id, "test_acc") == []
    assert not (folder / "RELOGGED").exists()
    assert _relog(folder, tracking_uri).exit_code == 0  # once it is free, it replays


RUN = "<run>"
MALFORMED = [
    ({"op": "metrics", "run_id": RUN}, "rows must be"),
    ({"op": "metrics", "run_id": RUN, "rows": [["test_acc", "high", 1, 2]]}, "rows must be"),
    ({"op": "tags", "run_id": RUN, "tags": ["grokked"]}, "tags must map"),
    ({"op": "end", "run_id": RUN, "status": "DONE"}, "status must be"),
    ({"op": "dataset", "run_id": RUN, "dataset": {"name": "x"}}, "dataset entry"),
    ({"op": "launch", "run_id": RUN}, "unknown journal operation"),
    ([1, 2], "not a journal entry"),
    ("{\"op\": ", "not a JSON line"),
]


@pytest.mark.parametrize(("entry", "message"), MALFORMED,
                         ids=["no-rows", "bad-row", "tags-list", "bad-status", "dataset",
                              "unknown-op", "not-object", "not-json"])
def test_a_malformed_entry_is_one_line_naming_it_and_nothing_is_written(
        entry, message, tracking_uri, tmp_path):
    client = MlflowClient(tracking_uri=tracking_uri)
    run_id = _open_run(client)
    journal = Journal.create(tmp_path / "rec", tracking_uri, "the store went away")
    journal.metrics(run_id, [("test_acc", 0.5, 1000, 10)])  # line 1: sound
    path = journal.folder / "journal.jsonl"
    bad = entry if isinstance(entry, str) else json.dumps(entry).replace(RUN, run_id)
    with path.open("a") as out:
        out.write(bad + "\n")  # line 2
    journal.end(run_id, "KILLED")  # line 3: sound
    result = _relog(journal.folder, tracking_uri)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{path}:2: ") and message in lines[0], (
        result.output)
    assert "tracking store" not in result.output and "Traceback" not in result.output
    assert client.get_metric_history(run_id, "test_acc") == []  # not even line 1
    assert client.get_run(run_id).info.status == "RUNNING"
    assert not (journal.folder / "RELOGGED").exists()


def test_a_journal_cannot_finish_a_killed_run(tracking_uri, tmp_path):
    client = MlflowClient(tracking_uri=tracking_uri)
    run_id = _open_run(client)
    client.set_terminated(run_id, "KILLED")  # interrupted, with a checkpoint to resume
    journal = Journal.create(tmp_path / "rec", tracking_uri, "crafted")
    journal.metrics(run_id, [("test_acc", 1.0, 1000, 99)])
    journal.end(run_id, "FINISHED")
    result = _relog(journal.folder, tracking_uri)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    path = journal.folder / "journal.jsonl"
    assert len(lines) == 1 and lines[0].startswith(f"{path}:2: ") and "KILLED" in lines[0]
    assert client.get_run(run_id).info.status == "KILLED"
    assert client.get_metric_history(run_id, "test_acc") == []
    # what grokexp itself journals when a resume of that run loses the store: reopen, end
    resumed = Journal.create(tmp_path / "rec", tracking_uri, "the store went away")
    resumed.reopen(run_id)
    resumed.metrics(run_id, [("test_acc", 1.0, 1000, 99)])
    resumed.end(run_id, "FINISHED")
    assert _relog(resumed.folder, tracking_uri).exit_code == 0
    assert client.get_run(run_id).info.status == "FINISHED"


def test_a_journal_of_another_store_is_refused_before_writing(tracking_uri, tmp_path):
    client = MlflowClient(tracking_uri=tracking_uri)
    run_id = _open_run(client)
    journal = Journal.create(tmp_path / "rec", tracking_uri, "the store went away")
    journal.metrics(run_id, [("test_acc", 0.5, 1000, 10)])
    journal.end("0123456789abcdef0123456789abcdef", "KILLED")
    result = _relog(journal.folder, tracking_uri)
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and "is not in" in result.output
    assert client.get_metric_history(run_id, "test_acc") == []
    assert os.listdir(journal.folder).count("RELOGGED") == 0


def test_lines_appended_after_a_replay_are_replayed_and_no_line_twice(tracking_uri, tmp_path):
    """A live process (an optimize worker whose store is away) may go on writing to a folder
    a user already re-logged: the next replay writes the new lines, and only those."""
    client = MlflowClient(tracking_uri=tracking_uri)
    run_id = _open_run(client)
    journal = Journal.create(tmp_path / "rec", tracking_uri, "the store went away")
    journal.metrics(run_id, [("test_acc", 0.5, 1000, 10)])
    journal.tags(run_id, {"phase": "first"})
    assert _relog(journal.folder, tracking_uri).exit_code == 0
    client.set_tag(run_id, "phase", "moved on")  # written to the store since
    journal.metrics(run_id, [("test_acc", 0.7, 2000, 20)])  # the live process goes on
    journal.end(run_id, "KILLED")
    second = _relog(journal.folder, tracking_uri)
    assert second.exit_code == 0, second.output
    run = client.get_run(run_id)
    assert run.data.tags["phase"] == "moved on"  # the first replay's tag not written again
    assert [m.step for m in client.get_metric_history(run_id, "test_acc")] == [10, 20]
    assert run.info.status == "KILLED"
    third = _relog(journal.folder, tracking_uri)
    assert third.exit_code == 0 and "re-logged already" in third.output


def test_a_replay_cut_short_goes_on_from_where_it_got(tracking_uri, tmp_path):
    """The store fails mid-replay (here its artifact folder: a file stands where the
    checkpoint's folder goes): the next replay starts after the last line written, so a tag
    it wrote and the store changed since is not put back."""
    from urllib.parse import urlsplit

    client = MlflowClient(tracking_uri=tracking_uri)
    run_id = _open_run(client)
    journal = Journal.create(tmp_path / "rec", tracking_uri, "the store went away")
    journal.tags(run_id, {"grokexp.checkpoint_epoch": "10"})
    journal.metrics(run_id, [("test_acc", 0.5, 1000, 10)])
    checkpoint = tmp_path / "checkpoint.pt"
    checkpoint.write_bytes(b"the checkpoint of epoch 10")
    journal.artifact(run_id, checkpoint, "checkpoint")
    artifacts = Path(urlsplit(client.get_run(run_id).info.artifact_uri).path)
    artifacts.mkdir(parents=True, exist_ok=True)
    blocker = artifacts / "checkpoint"
    blocker.write_text("not a folder")
    first = _relog(journal.folder, tracking_uri)
    assert first.exit_code == 1, first.output
    assert (journal.folder / "RELOGGED").read_text().splitlines()[1] == "lines 2"
    client.set_tag(run_id, "grokexp.checkpoint_epoch", "20")  # resumed since
    blocker.unlink()  # the store works again
    second = _relog(journal.folder, tracking_uri)
    assert second.exit_code == 0, second.output
    assert client.get_run(run_id).data.tags["grokexp.checkpoint_epoch"] == "20"
    assert [m.step for m in client.get_metric_history(run_id, "test_acc")] == [10]
    assert (artifacts / "checkpoint" / "checkpoint.pt").read_bytes() == checkpoint.read_bytes()
