"""SIGINT/SIGTERM during training: the first asks for a clean stop, the second aborts.

A clean stop finishes the current epoch, flushes the metrics, writes a checkpoint and ends
the runs KILLED; the process then exits 128 + the signal's number (130 for Ctrl-C, 143 for
SIGTERM), as shells expect.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import Any

__all__ = ["StopRequest"]


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
