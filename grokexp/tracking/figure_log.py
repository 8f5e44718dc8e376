"""Figures drawn by the figure pool, logged to their runs as they come back.

The training thread only hands over data (``submit``); the drawing happens in the pool's
processes, and each job's PNGs (with any tables sent along) reach the run in one store write.
``log_done`` is cheap and called between evaluations; ``finish`` waits for every job, so all
figures are in the store when the command returns, an interrupted one included.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from ..figures.render import FigureJob, FigurePool
from .tracker import Tracker

__all__ = ["FigureLog"]


class FigureLog:
    """Jobs in flight, in submission order, each with the run it belongs to."""

    def __init__(self, tracker: Tracker, pool: FigurePool | None = None):
        self.tracker = tracker
        self.pool = pool if pool is not None else FigurePool()
        self._pending: list[tuple[str, Future[dict[str, bytes]], dict[str, bytes]]] = []

    def submit(self, run_id: str, job: FigureJob, *args: Any,
               extra: Mapping[str, bytes] | None = None) -> None:
        """Draw ``job(*args)`` for ``run_id``; ``extra`` files are logged with its PNGs."""
        self._pending.append((run_id, self.pool.submit(job, *args), dict(extra or {})))

    def log_done(self, wait: bool = False) -> None:
        """Log the jobs that are done by now (all of them when ``wait``), oldest first."""
        while self._pending and (wait or self._pending[0][1].done()):
            run_id, future, extra = self._pending.pop(0)
            self.tracker.log_files(run_id, {**extra, **future.result()})

    def finish(self) -> None:
        """Every job drawn and logged; the workers stopped."""
        try:
            self.log_done(wait=True)
        finally:
            self.pool.close()
