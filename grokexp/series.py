"""One member's metric series: the one record the loop fills, the diagnostics add to, and
figures, claims, the forecast and the study read.

Plain lists only (no torch, no numpy), so that it pickles cheaply to a figure worker and can
be rebuilt from a tracked run. Each metric is a column with its own epochs: the loop's
metrics are measured at every evaluation, a probe's only at its chosen epochs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Column", "MemberSeries"]

Column = tuple[list[int], list[float]]  # (epochs, values), epochs increasing


@dataclass
class MemberSeries:
    """One member: its evaluated epochs, a column per metric, and what became of it.

    ``epochs`` are the evaluations the loop made; ``columns`` map a metric to its own
    (epochs, values). ``threshold`` is the spec's ``metrics.grok_threshold`` and ``budget``
    its ``train.epochs``: a member with no test grok epoch by ``budget`` is censored.
    """

    index: int = 0
    label: str = ""
    epochs: list[int] = field(default_factory=list)
    columns: dict[str, Column] = field(default_factory=dict)
    train_grok_epoch: int | None = None
    test_grok_epoch: int | None = None
    status: str = "RUNNING"  # FINISHED, FAILED, PRUNED
    reason: str = ""
    last_epoch: int = 0
    threshold: float = 0.95
    budget: int = 0

    @property
    def grokking_delay(self) -> int | None:
        if self.train_grok_epoch is None or self.test_grok_epoch is None:
            return None
        return self.test_grok_epoch - self.train_grok_epoch

    @property
    def metrics(self) -> dict[str, list[float]]:
        """Each column's values (for the loop's metrics, one per entry of ``epochs``)."""
        return {name: values for name, (_, values) in self.columns.items()}

    def values(self, name: str) -> list[float]:
        return self.columns.get(name, ([], []))[1]

    def epochs_of(self, name: str) -> list[int]:
        return self.columns.get(name, ([], []))[0]

    def points(self, name: str) -> dict[int, float]:
        """{epoch: value} of one column."""
        return dict(zip(*self.columns.get(name, ([], [])), strict=True))

    def final(self, name: str) -> float | None:
        values = self.values(name)
        return values[-1] if values else None

    def add(self, name: str, epoch: int, value: float) -> None:
        """One value of one metric (a probe's, measured at its own epochs)."""
        epochs, values = self.columns.setdefault(name, ([], []))
        epochs.append(epoch)
        values.append(value)

    def record(self, epoch: int, values: Mapping[str, float]) -> None:
        """One evaluation: every metric the loop measured at ``epoch``."""
        self.epochs.append(epoch)
        self.last_epoch = epoch
        for name, value in values.items():
            self.add(name, epoch, value)
