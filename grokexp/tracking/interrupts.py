"""Ctrl-C and SIGTERM held over a store write, and delivered right after it.

``grokexp optimize`` turns both signals into an exception raised wherever the main thread is
(``cli/signals.py``), and a second signal does the same during a clean stop of ``grokexp run``.
Raised in the middle of a write, that exception can leave the write half done: a sqlite
connection still holding the database's lock, so that the clean-up's own writes (the trial
queued again, its run ended KILLED) each wait out sqlite's busy timeout; or an Optuna journal
file lock never released. So each write runs with the handlers swapped for ones that only
note the signal, and the noted signals go to the real handlers when the write is done.

Python runs signal handlers in the main thread alone, whichever thread the kernel handed the
signal to, so swapping them there holds the signal; masking it (``pthread_sigmask``) would not,
as it masks one thread and another thread may take the signal. In any other thread the block
runs as it is (its signals reach the main thread anyway).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, TypeVar

__all__ = ["signals_held", "held", "HELD"]

T = TypeVar("T")

HELD = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Run the block with SIGINT and SIGTERM noted, not handled; then handle them in order."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        noted.append(signum)

    previous: dict[int, Any] = {int(sig): signal.signal(sig, note) for sig in HELD}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        for signum in noted:  # a handler that raises (KeyboardInterrupt) ends the loop
            _deliver(signum, previous[signum])


def _deliver(signum: int, handler: Any) -> None:
    """What the signal would have done had it arrived now."""
    if callable(handler):
        handler(signum, None)
    elif handler in (signal.SIG_DFL, None):
        signal.raise_signal(signum)


def held(action: Callable[[], T]) -> T:
    """``action()`` with SIGINT and SIGTERM held (:func:`signals_held`)."""
    with signals_held():
        return action()
