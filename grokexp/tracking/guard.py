"""A long-lived worker's view of its tracking store: it says when the store fails, waits for
it to come back, and has the tracker give it what it missed.

A tracker that keeps failing goes offline into a recovery folder (its ``failure``, its
:meth:`~.tracker.Tracker.recovery_folder`; see :class:`~.mlflow_tracker.MlflowTracker`).
:meth:`StoreGuard.check` says so once; :meth:`StoreGuard.ready` waits for the store to
answer and has the tracker re-log the folder and go back online
(:meth:`~.tracker.Tracker.reconnect`); :meth:`StoreGuard.final` tries that once more. A
tracker without a store (``NullTracker``) never fails, so it is always ready.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .redact import one_line, redact_uri
from .retry import Backoff, retry
from .tracker import Tracker

__all__ = ["StoreGuard"]


class StoreGuard:
    """The tracking store as one worker sees it; ``echo`` says what happens, ``wait_s`` is how
    long :meth:`ready` waits for a store that failed."""

    def __init__(self, tracker: Tracker, echo: Callable[[str], None], wait_s: float):
        self.tracker, self.echo, self.wait_s = tracker, echo, wait_s
        self.problem: str | None = None  # a failure outside the tracker's writes
        self._said = False

    @property
    def failure(self) -> str | None:
        return self.tracker.failure or self.problem

    @property
    def folder(self) -> Path | None:
        return self.tracker.recovery_folder()

    @property
    def uri(self) -> str:
        return redact_uri(self.tracker.tracking_uri)

    def check(self) -> None:
        """After tracking writes: say once that the store failed and where writes go now."""
        if self._said or self.tracker.failure is None:
            return
        self._said = True
        lost = self.tracker.lost
        kept = (f"what the store misses is lost: {lost}" if lost is not None
                else f"what the store misses is kept in {self.folder}")
        self.echo(f"tracking store {self.uri}: {self.tracker.failure}; training goes on, "
                  f"{kept}")

    def failed(self, problem: str) -> None:
        """A failure outside the tracker's writes (a run the store would not create):
        :meth:`ready` waits for the store as it does after the tracker's own."""
        self.problem = problem

    def _catch_up(self) -> None:
        """Raises while the store still fails; else the tracker re-logs its folder and goes
        online."""
        was_failing = self.failure is not None
        replayed = self.tracker.reconnect()
        if replayed is not None:
            folder, counts = replayed
            shown = ", ".join(f"{v} {k}" for k, v in counts.items())
            self.echo(f"tracking store {self.uri} answers again: re-logged {folder} ({shown})")
        elif was_failing:
            self.echo(f"tracking store {self.uri} answers again")
        self.problem, self._said = None, False

    def ready(self) -> bool:
        """True once the store takes writes again (at once while it works); False if it is
        still failing after ``wait_s`` (tried 0.5 → 5 s apart, the policy of retry.py)."""
        if self.failure is None:
            return True
        waiting: list[str] = []

        def say_waiting(err: Exception, pause: float) -> None:
            if not waiting:
                waiting.append(one_line(err))
                self.echo(f"waiting up to {self.wait_s:g} s for tracking store {self.uri} "
                          f"before the next batch ({waiting[0]})")

        try:
            retry(self._catch_up, Backoff(first_s=0.5, cap_s=5.0, attempts=None,
                                          within_s=self.wait_s), on_retry=say_waiting)
            return True
        except Exception as err:  # requests', MLflow's and relog's errors alike
            self.problem = self.problem or one_line(err)
            return False

    def final(self) -> bool:
        """At the end: one more try; True when the store takes writes (or never failed)."""
        if self.failure is None:
            return True
        try:
            self._catch_up()
            return True
        except Exception as err:
            self.problem = self.problem or one_line(err)
            return False
