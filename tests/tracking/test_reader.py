"""The read side of the store (tracking/reader.py), against a real MLflow sqlite store.

Runs are written as grokexp writes them (an ``MlflowTracker``: a parent, members tagged with
their index, params, metric histories, artifacts) and read back; what the reader says is
held against what ``MlflowClient`` itself returns for the same runs.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

import grokexp.tracking.reader as reader_module
from grokexp.errors import NotFound
from grokexp.tracking.mlflow_tracker import MlflowTracker
from grokexp.tracking.reader import RunNotFound, RunReader, StoreReadError, param_value

TEST_ACC = [(0, 0.1), (10, 0.4), (20, 0.96), (30, 0.99)]
TRAIN_ACC = [(0, 0.2), (10, 0.97), (20, 1.0), (30, 1.0)]


def _member(tracker: MlflowTracker, parent: str, index: int, scale: float) -> str:
    params = {"train.epochs": 30, "train.lr": 0.001, "train.weight_decay": 1.0,
              "metrics.grok_threshold": 0.95, "varied.init.scale": scale,
              "varied.task.ops": ["+", "-"]}
    run_id = tracker.start_run(f"member-{index}", params, {"grokexp.member": str(index)},
                               parent)
    for (epoch, test), (_, train) in zip(TEST_ACC, TRAIN_ACC, strict=True):
        tracker.log_metrics(run_id, epoch, {"test_acc": test, "train_acc": train})
    tracker.log_metrics(run_id, 15, {"probe": 0.5})  # a probe, at its own epochs
    tracker.log_metrics(run_id, 25, {"probe": 0.7})
    tracker.log_metrics(run_id, 30, {"train_grok_epoch": 10.0, "test_grok_epoch": 20.0,
                                     "grokking_delay": 10.0})
    tracker.log_text(run_id, f"member {index}", "notes/member.txt")
    tracker.set_tags(run_id, {"grokexp.status": "FINISHED"})
    tracker.end_run(run_id)
    return run_id


@pytest.fixture
def sweep(tracking_uri: str) -> tuple[str, list[str]]:
    """A sweep's parent and its three members, made out of member order."""
    tracker = MlflowTracker(tracking_uri, "sweep")
    parent = tracker.start_run("sweep", {"metrics.grok_threshold": 0.95},
                               {"grokexp.role": "sweep", "grokexp.reproduce": "quick"})
    made = {index: _member(tracker, parent, index, float(index)) for index in (2, 0, 1)}
    tracker.end_run(parent)
    return parent, [made[i] for i in range(3)]


def test_a_run_and_its_members_in_member_order(tracking_uri, sweep):
    parent, members = sweep
    reader = RunReader.open(tracking_uri)
    run = reader.run(parent)
    assert (run.run_id, run.label, run.role, run.parent_id) == (parent, "sweep", "sweep", None)
    assert reader.experiment_name(run) == "sweep"
    assert [r.run_id for r in reader.children(run)] == members
    assert [r.run_id for r in reader.members(run)] == members
    first = reader.run(members[0])
    assert reader.children(first) == [] and reader.members(first) == [first]
    assert first.parent_id == parent and first.member == 0 and first.label == "member-0"
    assert first.varied == {"init.scale": 0.0, "task.ops": ["+", "-"]}


def test_members_are_read_page_by_page(tracking_uri, sweep, monkeypatch):
    parent, members = sweep
    monkeypatch.setattr(reader_module, "_PAGE", 2)  # three members: two pages
    reader = RunReader.open(tracking_uri)
    assert [r.run_id for r in reader.children(reader.run(parent))] == members


def test_a_members_series_holds_what_the_store_holds(tracking_uri, sweep):
    _, members = sweep
    reader = RunReader.open(tracking_uri)
    series = reader.series(reader.run(members[1]))
    client = MlflowClient(tracking_uri=tracking_uri)
    for name in ("test_acc", "train_acc", "probe"):
        history = sorted(client.get_metric_history(members[1], name), key=lambda m: m.step)
        assert series.columns[name] == ([m.step for m in history], [m.value for m in history])
    assert set(series.columns) == {"test_acc", "train_acc", "probe"}  # no summary columns
    assert series.epochs == [0, 10, 20, 30] and series.last_epoch == 30
    assert series.epochs_of("probe") == [15, 25]
    # the grok epochs come from the columns, by the rule: first epoch at or above 0.95
    assert (series.train_grok_epoch, series.test_grok_epoch) == (10, 20)
    assert (series.index, series.label, series.run_id) == (1, "member-1", members[1])
    assert (series.budget, series.threshold, series.status) == (30, 0.95, "FINISHED")
    assert (series.lr, series.weight_decay) == (0.001, 1.0)
    assert series.varied == {"init.scale": 1.0, "task.ops": ["+", "-"]}


def test_a_step_logged_twice_keeps_its_last_value(tracking_uri):
    tracker = MlflowTracker(tracking_uri, "twice")
    run_id = tracker.start_run("r", {}, {})
    for epoch, value in [(0, 0.1), (10, 0.2), (10, 0.3), (20, 0.4)]:
        tracker.log_metrics(run_id, epoch, {"test_acc": value})
        tracker.flush()
    reader = RunReader.open(tracking_uri)
    series = reader.series(reader.run(run_id))
    assert series.columns["test_acc"] == ([0, 10, 20], [0.1, 0.3, 0.4])
    assert series.budget is None and series.test_grok_epoch is None


def test_artifacts_are_listed_and_downloaded(tracking_uri, sweep, tmp_path):
    _, members = sweep
    reader = RunReader.open(tracking_uri)
    folders = reader.artifacts(members[0])
    assert [(a.path, a.is_dir) for a in folders] == [("notes", True)]
    files = reader.artifacts(members[0], "notes")
    assert [(a.path, a.is_dir) for a in files] == [("notes/member.txt", False)]
    local = reader.download(members[0], "notes/member.txt", tmp_path)
    assert local.read_text() == "member 0"
    assert reader.run(members[0]).artifact_uri.endswith(f"{members[0]}/artifacts")


def test_latest_is_the_newest_top_level_run_with_the_tags(tracking_uri, sweep):
    parent, _ = sweep
    reader = RunReader.open(tracking_uri)
    found = reader.latest("sweep", {"grokexp.reproduce": "quick"})
    assert found is not None and found.run_id == parent
    tracker = MlflowTracker(tracking_uri, "sweep")
    newer = tracker.start_run("again", {}, {"grokexp.reproduce": "quick"})
    tracker.start_run("child", {}, {"grokexp.reproduce": "quick"}, newer)  # never a child
    found = reader.latest("sweep", {"grokexp.reproduce": "quick"})
    assert found is not None and found.run_id == newer
    assert reader.latest("sweep", {"grokexp.reproduce": "full"}) is None
    assert reader.latest("no such experiment", {"grokexp.reproduce": "quick"}) is None


def test_a_missing_run_is_bad_input_and_a_failing_store_is_one_line(tracking_uri, sweep):
    parent, _ = sweep
    reader = RunReader.open(tracking_uri)
    with pytest.raises(RunNotFound) as missing:
        reader.run("0" * 32)
    assert isinstance(missing.value, NotFound) and missing.value.exit_code == 2
    assert str(missing.value) == f"no run {'0' * 32} in {tracking_uri}"
    assert reader.exists(parent) is True and reader.exists("0" * 32) is False
    with _broken(Path(tracking_uri.removeprefix("sqlite:///"))):
        assert reader.exists(parent) is None  # no answer is no proof that it is missing
        with pytest.raises(StoreReadError) as failed:
            reader.run(parent)
    text = str(failed.value)
    assert text.startswith(f"tracking store {tracking_uri}: no run {parent} (")
    assert "\n" not in text and failed.value.detail in text and failed.value.exit_code == 1


def test_the_tracker_answers_through_its_reader(tracking_uri, sweep):
    parent, _ = sweep
    tracker = MlflowTracker(tracking_uri, "sweep")
    assert tracker.reader().run(parent).run_id == parent
    assert tracker.run_exists(parent) is True and tracker.run_exists("0" * 32) is False


def test_param_values_read_back_as_the_spec_had_them():
    assert param_value("1.5") == 1.5 and param_value("[1, 2]") == [1, 2]
    assert param_value("relu") == "relu" and param_value("True") == "True"


@contextlib.contextmanager
def _broken(db: Path):
    """The sqlite header overwritten in place while inside: every read fails."""
    with db.open("r+b") as f:
        saved = f.read(100)
        f.seek(0)
        f.write(b"\0" * 100)
    try:
        yield
    finally:
        with db.open("r+b") as f:
            f.write(saved)
