"""Ctrl-C and SIGTERM held over a store write: the write is done whole, then the signal acts.

The signals are real (``os.kill`` of this process, from the main thread and from another
thread), the store a real sqlite one read back through ``MlflowClient``; the client's
``log_batch`` is the real one, wrapped only to send the signal at the start of the write.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest
from mlflow.tracking import MlflowClient

from grokexp.tracking.interrupts import signals_held
from grokexp.tracking.mlflow_tracker import MlflowTracker


def test_a_signal_in_the_block_acts_after_it() -> None:
    steps = []
    with pytest.raises(KeyboardInterrupt):  # Python's own SIGINT handler, after the block
        with signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            steps.append("after the signal")  # reached: the block is not cut short
    assert steps == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_a_signal_another_thread_takes_is_held_too() -> None:
    """The kernel may hand a process's signal to any of its threads; Python runs the
    handler in the main thread, so the swap there holds it whichever thread took it."""
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with signals_held():
            sender = threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGTERM))
            sender.start()
            sender.join()
            for _ in range(1000):  # bytecodes enough for a pending handler to have run
                pass
            assert seen == []
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_store_write_interrupted_by_ctrl_c_is_written_whole(tracking_uri) -> None:
    """``grokexp optimize`` raises KeyboardInterrupt wherever the main thread is; one raised
    in the middle of a write could leave a sqlite connection holding the database's lock.
    Held, the write is done and in the store before the interrupt unwinds."""
    tracker = MlflowTracker(tracking_uri, "interrupts", flush_every_s=3600.0)
    run_id = tracker.start_run("member", {}, {})
    real = tracker.client.log_batch

    def interrupted(*args, **kwargs):  # Ctrl-C as the write starts
        os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    tracker.client.log_batch = interrupted
    tracker.log_metrics(run_id, 3, {"test_acc": 0.5})
    with pytest.raises(KeyboardInterrupt):
        tracker.flush()
    tracker.client.log_batch = real
    assert tracker.failure is None  # not taken for a failing store
    history = MlflowClient(tracking_uri).get_metric_history(run_id, "test_acc")
    assert [(m.step, m.value) for m in history] == [(3, 0.5)]
    tracker.end_run(run_id, "KILLED")  # and the next write goes through at once
    assert MlflowClient(tracking_uri).get_run(run_id).info.status == "KILLED"
