"""The one retry policy of grokexp's store calls: the MLflow store and the Optuna storage.

The policy, stated once: a call that fails is tried again after a pause; the pauses double
from ``first_s`` up to ``cap_s``; the tries stop after ``attempts`` of them, or, with
``within_s``, when the next pause would end more than ``within_s`` seconds after the first
try began; then the last error is raised as it was. Only the errors ``retry_on`` accepts are
tried again (by default every ``Exception``: the stores' own exception types vary by backend);
any other is raised at once. A caller that wants to say it is waiting passes ``on_retry``,
called before each pause.

Each call site picks its bounds, nothing else:

- a tracker write (mlflow_tracker.py): 5 tries, 0.5 → 4 s (7.5 s in all), then the tracker
  goes offline into its recovery folder;
- the experiment-kind tag that workers may race to set: 3 tries, 0.2 → 0.4 s;
- a fresh store's schema that another process is making (store.py): 0.2 → 2 s, for up to the
  open's timeout, only errors that look like that race;
- an Optuna RDB storage whose tables racing workers are creating (study/storage.py): 5
  tries, 0.5 → 4 s, never a missing driver or a bad URL (ImportError, ValueError);
- an optimize worker waiting for a failed store to answer before its next batch (guard.py):
  0.5 → 5 s, for up to ``store_wait_s``;
- a joining worker waiting for the study's parent run to be recorded (study/optimize.py):
  0.5 → 2 s, for up to 30 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["Backoff", "retry"]

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """The bounds of the policy for one call site (see the module's docstring)."""

    first_s: float = 0.5
    cap_s: float = 4.0
    attempts: int | None = 5  # tries in all; None: only ``within_s`` bounds them
    within_s: float | None = None

    def pauses(self) -> Iterator[float]:
        """The pauses between tries, in order, ignoring ``within_s`` (``retry`` applies it)."""
        pause, tries = self.first_s, 1
        while self.attempts is None or tries < self.attempts:
            yield min(pause, self.cap_s)
            pause, tries = pause * 2, tries + 1


def _any_error(err: Exception) -> bool:
    return True


def retry(action: Callable[[], T], policy: Backoff | Sequence[float],
          retry_on: Callable[[Exception], bool] = _any_error,
          on_retry: Callable[[Exception, float], None] | None = None) -> T:
    """``action()``, tried again under ``policy`` (a :class:`Backoff`, or the pauses
    themselves, e.g. a test's short ones); the last error is raised as it was."""
    start = time.monotonic()
    within = policy.within_s if isinstance(policy, Backoff) else None
    pauses = iter(policy.pauses() if isinstance(policy, Backoff) else policy)
    while True:
        try:
            return action()
        except Exception as err:
            pause = next(pauses, None)
            if (not retry_on(err) or pause is None
                    or (within is not None and time.monotonic() + pause > start + within)):
                raise
            if on_retry is not None:
                on_retry(err, pause)
            time.sleep(pause)
