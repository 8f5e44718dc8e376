"""A run's end tags go with its last metrics: one ``log_batch`` for both, then its status.

Written to a real sqlite store and read back through ``MlflowClient``; the tracker's client is
the real one, its ``log_batch`` wrapped only to count the calls. When the store has failed,
the same tags and metrics go to the recovery journal and ``grokexp relog`` puts them back.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from grokexp.cli import main
from grokexp.tracking.mlflow_tracker import MlflowTracker

TAGS = {"grokked": "true", "grokexp.status": "FINISHED"}


def counted_batches(tracker: MlflowTracker) -> list[tuple[str, int, int]]:
    """(run, metrics, tags) of each ``log_batch`` the tracker's real client makes from now."""
    batches: list[tuple[str, int, int]] = []
    real = tracker.client.log_batch

    def counted(run_id, metrics=(), params=(), tags=(), **kwargs):
        batches.append((run_id, len(metrics), len(tags)))
        return real(run_id, metrics=metrics, params=params, tags=tags, **kwargs)

    tracker.client.log_batch = counted
    return batches


def test_the_end_tags_and_last_metrics_are_one_write(tracking_uri):
    tracker = MlflowTracker(tracking_uri, "ends", flush_every_s=3600.0)
    run_id = tracker.start_run("member", {"seed": 0}, {})
    batches = counted_batches(tracker)
    for epoch in range(3):
        tracker.log_metrics(run_id, epoch, {"test_acc": epoch / 4})
    tracker.end_run(run_id, "FINISHED", TAGS)
    assert batches == [(run_id, 3, 2)]
    run = MlflowClient(tracking_uri).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert {k: run.data.tags[k] for k in TAGS} == TAGS
    history = MlflowClient(tracking_uri).get_metric_history(run_id, "test_acc")
    assert [(m.step, m.value) for m in history] == [(0, 0.0), (1, 0.25), (2, 0.5)]
    other = tracker.start_run("no metrics", {}, {})
    tracker.end_run(other, "FINISHED", {"grokked": "false"})  # tags alone: still one write
    tracker.end_run(tracker.start_run("bare", {}, {}))  # nothing: no write at all
    assert batches == [(run_id, 3, 2), (other, 0, 1)]
    assert MlflowClient(tracking_uri).get_run(other).data.tags["grokked"] == "false"


def test_end_tags_of_a_failed_store_are_journalled_and_relogged(tracking_uri, tmp_path):
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    tracker = MlflowTracker(tracking_uri, "ends", flush_every_s=3600.0,
                            retry_delays=(0.01,), recovery_dir=tmp_path / "rec")
    run_id = tracker.start_run("member", {"seed": 0}, {})
    tracker.log_metrics(run_id, 5, {"test_acc": 0.75})
    with db.open("r+b") as f:  # the sqlite header overwritten: every write now fails
        header = f.read(100)
        f.seek(0)
        f.write(b"\0" * 100)
    tracker.end_run(run_id, "FINISHED", TAGS)
    assert tracker.failure is not None and tracker.journal is not None
    with db.open("r+b") as f:
        f.write(header)
    relogged = CliRunner().invoke(main, ["relog", str(tracker.journal.folder),
                                         "--tracking-uri", tracking_uri])
    assert relogged.exit_code == 0, relogged.output
    run = MlflowClient(tracking_uri).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert {k: run.data.tags[k] for k in TAGS} == TAGS
    assert run.data.metrics["test_acc"] == 0.75


def test_a_long_buffer_keeps_each_write_within_mlflows_1000_and_other_runs_flush_too(
        tracking_uri):
    """MLflow takes at most 1000 metrics and tags in one ``log_batch``: with 2 tags, the
    first write carries 998 metrics, and the other run's buffer is flushed beside it."""
    tracker = MlflowTracker(tracking_uri, "ends", flush_every_s=3600.0)
    ending, other = tracker.start_run("ending", {}, {}), tracker.start_run("other", {}, {})
    batches = counted_batches(tracker)
    for step in range(1500):
        tracker.log_metrics(ending, step, {"loss": 1.0 / (step + 1)})
    tracker.log_metrics(other, 0, {"loss": 2.0})
    tracker.end_run(ending, "FINISHED", TAGS)
    assert sorted(batches) == sorted([(ending, 998, 2), (ending, 502, 0), (other, 1, 0)])
    client = MlflowClient(tracking_uri)
    history = client.get_metric_history(ending, "loss")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(1500))
    assert [m.value for m in client.get_metric_history(other, "loss")] == [2.0]
    assert {k: client.get_run(ending).data.tags[k] for k in TAGS} == TAGS
    assert client.get_run(other).info.status == "RUNNING"
