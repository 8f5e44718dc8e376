"""The helper processes of a run, started before the run's own imports.

A run hands its drawing to figure workers and its probes to the probe process. Each is a
fresh interpreter that imports matplotlib or torch before it can work: about 1 s and 2 s of
CPU. Started when the run begins, they were still importing when a short run ended, and the
run waited for them. :func:`start_helpers` starts them as soon as the spec is read, before
the command imports torch, MLflow and the store, so that on a second core their imports
overlap the command's own. It imports neither torch nor matplotlib itself.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..diagnostics.probe_process import ProbeProcess
from ..figures.render import MAX_WORKERS, FigurePool

__all__ = ["Helpers", "start_helpers", "helpers_of", "helpers_for"]


@dataclass
class Helpers:
    """The figure workers and the probe process one run will use (``None``: the probes run in
    the training process, as they do off the CPU)."""

    figures: FigurePool
    probes: ProbeProcess | None

    def close(self) -> None:
        """Stop both (the run closes them itself when it ends; this is for a command that
        fails before its run begins, and closing twice is harmless)."""
        try:
            if self.probes is not None:
                self.probes.close()
        finally:
            self.figures.close()


def start_helpers(device: str, members: int, cores: int | None = None,
                  figures: bool = True) -> Helpers:
    """Start the figure workers, and the probe process unless the run trains on a GPU
    (``device`` is the spec's ``train.device``; on ``auto`` the process is started, and stays
    idle if a GPU is found: probes off the CPU run in place).

    ``MAX_WORKERS`` figure workers, but one for a one-member run on two cores or fewer
    (``cores``: this process's, unless given): a second worker halves the drawing of one
    member's figures and costs its own matplotlib import, which on two full cores only takes
    CPU from the main process, the short command's longer path (the performance page has
    the measurement). With two members or more, or a free core, two draw sooner. Without
    ``figures`` (no member draws its own: ``metrics.figures = false``) one worker draws a
    population's figures, and a one-member run starts none."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
    if not figures:
        pool = FigurePool(1 if members > 1 else 0)
    else:
        pool = FigurePool(1 if members <= 1 and cores <= 2 else MAX_WORKERS)
    pool.start()
    probes = None
    if not device.startswith(("cuda", "mps")):
        probes = ProbeProcess()
        probes.executor()
    return Helpers(pool, probes)


def helpers_of(spec: Any, members: Sequence[Any]) -> Helpers:
    """:func:`start_helpers` for ``spec`` and its ``members``: as many, and figure workers
    for their own figures when any of them draws its own (``metrics.figures``)."""
    return start_helpers(spec.train.device, len(members),
                         figures=any(m.spec.metrics.figures for m in members))


@contextlib.contextmanager
def helpers_for(spec: Any, members: Sequence[Any]) -> Iterator[Helpers]:
    """:func:`helpers_of`, stopped on the way out when the command fails before its run took
    them over."""
    helpers = helpers_of(spec, members)
    try:
        yield helpers
    except BaseException:
        helpers.close()
        raise
