"""When something is due at an evaluation: chosen epochs, log-spaced checkpoints.

Evaluations come every ``metrics.every`` epochs, so a chosen epoch is reached at the first
evaluation at or after it. An :class:`EvaluationClock` remembers the previous evaluation of the
population being trained, which is what :func:`due` needs.
"""

from __future__ import annotations

import numpy as np

__all__ = ["checkpoint_targets", "due", "EvaluationClock"]


def checkpoint_targets(epochs: int, every: int, count: int) -> list[int]:
    """0 and ``count - 1`` log-spaced epochs from ``every`` to ``epochs`` (deduplicated)."""
    if count <= 0:
        return []
    if count == 1:
        return [0]
    spaced = np.geomspace(every, max(every, epochs), count - 1)
    return sorted({0, *(int(round(e)) for e in spaced)})


def due(targets: list[int], previous: int, epoch: int) -> list[int]:
    """Targets reached at this evaluation: previous < target ≤ epoch (the first evaluation at
    or after each target, so targets need not be multiples of ``every``)."""
    return [t for t in targets if previous < t <= epoch]


class EvaluationClock:
    """The epoch of the previous evaluation, population after population."""

    def __init__(self) -> None:
        self._previous = -1

    def tick(self, epoch: int, every: int) -> int:
        """Note an evaluation at ``epoch``; the previous one's epoch: -1 when a population
        starts (epoch 0), ``epoch - every`` when it resumes (nothing is overdue)."""
        if epoch == 0:
            self._previous = -1
        elif self._previous < 0:
            self._previous = epoch - every
        previous, self._previous = self._previous, epoch
        return previous
