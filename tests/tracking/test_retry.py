"""The one retry policy (tracking/retry.py), and the store guard that waits with it
(tracking/guard.py) over a real sqlite store that fails and comes back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from grokexp.tracking.guard import StoreGuard
from grokexp.tracking.mlflow_tracker import WRITE_RETRY, MlflowTracker
from grokexp.tracking.retry import Backoff, retry
from grokexp.tracking.tracker import NullTracker


class Flaky:
    """Fails ``times`` times with ``error``, then answers ``"done"``; counts its calls."""

    def __init__(self, times: int, error: Exception | None = None):
        self.times, self.calls = times, 0
        self.error = error or OSError("database is locked")

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.times:
            raise self.error
        return "done"


def test_pauses_double_up_to_the_cap_for_the_tries_allowed():
    assert list(Backoff(first_s=0.5, cap_s=4.0, attempts=5).pauses()) == [0.5, 1, 2, 4]
    assert list(Backoff(first_s=0.2, attempts=3).pauses()) == [0.2, 0.4]
    assert list(Backoff(first_s=1.0, cap_s=2.0, attempts=5).pauses()) == [1, 2, 2, 2]
    assert list(WRITE_RETRY.pauses()) == [0.5, 1, 2, 4]  # what docs/operations.md says
    tracker_default = MlflowTracker.__init__.__defaults__
    assert tracker_default is not None and (0.5, 1.0, 2.0, 4.0) in tracker_default


def test_a_call_that_fails_then_answers_is_tried_again():
    flaky, said = Flaky(2), []
    policy = Backoff(first_s=0.001, attempts=3)
    assert retry(flaky, policy, on_retry=lambda err, pause: said.append(pause)) == "done"
    assert flaky.calls == 3 and said == [0.001, 0.002]


def test_the_last_error_is_raised_as_it_was_once_the_tries_are_spent():
    error = OSError("database is locked")
    flaky = Flaky(10, error)
    with pytest.raises(OSError) as raised:
        retry(flaky, Backoff(first_s=0.001, attempts=4))
    assert raised.value is error and flaky.calls == 4
    flaky = Flaky(10)
    with pytest.raises(OSError):
        retry(flaky, (0.001,))  # the pauses themselves: two tries
    assert flaky.calls == 2


def test_only_the_errors_retry_on_accepts_are_tried_again():
    flaky = Flaky(1, ValueError("not a URL"))
    with pytest.raises(ValueError):
        retry(flaky, Backoff(first_s=0.001), retry_on=lambda e: not isinstance(e, ValueError))
    assert flaky.calls == 1


def test_within_s_stops_before_a_pause_would_end_past_it():
    flaky, said = Flaky(100), []
    start = time.monotonic()
    with pytest.raises(OSError):
        retry(flaky, Backoff(first_s=0.02, cap_s=0.04, attempts=None, within_s=0.15),
              on_retry=lambda err, pause: said.append(pause))
    assert time.monotonic() - start < 0.15 + 0.05
    assert said[:2] == [0.02, 0.04] and sum(said) <= 0.15 and flaky.calls == len(said) + 1


def test_a_guard_over_a_tracker_without_a_store_is_always_ready():
    said: list[str] = []
    guard = StoreGuard(NullTracker(), said.append, wait_s=0.0)
    guard.check()
    assert guard.ready() and guard.final() and guard.failure is None and said == []


def test_the_guard_says_a_failure_once_waits_and_relogs_when_the_store_is_back(
        tracking_uri, tmp_path):
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    tracker = MlflowTracker(tracking_uri, "guarded", flush_every_s=0.0, retry_delays=(0.001,),
                            recovery_dir=tmp_path / "rec")
    run_id = tracker.start_run("r", {}, {})
    said: list[str] = []
    guard = StoreGuard(tracker, said.append, wait_s=0.6)
    saved = db.read_bytes()[:100]
    with db.open("r+b") as f:
        f.write(b"\0" * 100)
    try:
        tracker.log_metrics(run_id, 0, {"test_acc": 0.5})  # fails twice: to the journal
        guard.check()
        guard.check()
        folder = guard.folder
        assert folder is not None and folder.parent == tmp_path / "rec"
        assert len(said) == 1 and said[0].startswith(f"tracking store {tracking_uri}: ")
        assert f"what the store misses is kept in {folder}" in said[0]
        assert not guard.ready()  # still failing after wait_s (one pause of 0.5 s)
        assert said[1].startswith(f"waiting up to 0.6 s for tracking store {tracking_uri}")
        assert not guard.final() and guard.failure is not None
    finally:
        with db.open("r+b") as f:
            f.write(saved)
    assert guard.ready()
    assert said[-1].startswith(f"tracking store {tracking_uri} answers again: re-logged "
                               f"{folder} (1 metrics")
    assert guard.failure is None and guard.folder is None and tracker.failure is None
    assert tracker.reader().series(tracker.reader().run(run_id)).values("test_acc") == [0.5]
