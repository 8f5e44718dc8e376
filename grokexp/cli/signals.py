"""SIGINT/SIGTERM during training: the first asks for a clean stop, the second aborts.

A clean stop finishes the current epoch, flushes the metrics, writes a checkpoint and ends
the runs KILLED; the process then exits 128 + the signal's number (130 for Ctrl-C, 143 for
SIGTERM), as shells expect.

``grokexp optimize`` has no checkpoint: a trial is queued again instead. There SIGINT and
SIGTERM both interrupt at once (:func:`interrupts_like_sigint`): the worker's untold trials
are failed and enqueued again and their runs end KILLED, as Python's KeyboardInterrupt
unwinds the study; a second signal during that clean-up ends the process at once.
"""

from __future__ import annotations

import functools
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, TypeVar

import click

__all__ = ["StopRequest", "Terminated", "interrupts_like_sigint"]

F = TypeVar("F", bound=Callable[..., Any])


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is, as Ctrl-C raises KeyboardInterrupt."""

    signum = signal.SIGTERM


def interrupts_like_sigint(command: F) -> F:
    """Run ``command`` with SIGTERM raising :class:`Terminated` in the main thread; either
    signal then ends it with one line on stderr and exit 128 + the signal's number."""

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it at once
        raise Terminated

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        main = threading.current_thread() is threading.main_thread()
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        if main:
            signal.signal(signal.SIGTERM, on_sigterm)
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt as err:
            signum = getattr(err, "signum", signal.SIGINT)
            if main:  # a second Ctrl-C ends it at once too
                signal.signal(signal.SIGINT, signal.SIG_DFL)
            click.echo(f"interrupted by {signal.Signals(signum).name}: the trials this "
                       "worker had not told were failed and queued again, their runs ended "
                       "KILLED; run the same command to go on", err=True)
            sys.exit(128 + signum)
        finally:
            if main:
                for sig, handler in previous.items():
                    signal.signal(sig, signal.SIG_DFL if handler is None else handler)

    return wrapper  # type: ignore[return-value]


class StopRequest:
    """Context manager installing the handlers; ``requested`` is what the loop polls."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, announce: bool = True):
        self.signum: int | None = None
        self.announce = announce
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt  # a second signal: stop now, without a checkpoint
        self.signum = signum
        if self.announce:
            name = signal.Signals(signum).name
            sys.stderr.write(f"\ngrokexp: {name} received; stopping after this epoch and "
                             "writing a checkpoint (send it again to abort at once)\n")
            sys.stderr.flush()

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
