"""One member's metric series: the one record the loop fills, the diagnostics add to, and
figures, claims, the forecast and the study read; and the snapshots the diagnostics keep of
a member beside it.

Plain lists only (no torch, no numpy), so that it pickles cheaply to a figure worker and can
be rebuilt from a tracked run. Each metric is a column with its own epochs: the loop's
metrics are measured at every evaluation, a probe's only at its chosen epochs. When a member
groks, is censored, rises or sets off is decided in ``grokexp.grokking``, never here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Column", "MemberSeries", "MemberSnapshots"]

Column = tuple[list[int], list[float]]  # (epochs, values), epochs increasing


@dataclass
class MemberSeries:
    """One member: its evaluated epochs, a column per metric, and what became of it.

    ``epochs`` are the evaluations the loop made; ``columns`` map a metric to its own
    (epochs, values). ``threshold`` is the spec's ``metrics.grok_threshold`` and ``budget``
    its ``train.epochs`` (None: not known): a member with no test grok epoch by ``budget``
    is censored. The grok epochs are filled by whoever filled the columns (the loop as it
    goes, a reader with ``grokking.grok_epochs``). A series read back from a tracked run
    may say where it came from: its ``run_id``, its ``varied`` values, and its ``lr`` and
    ``weight_decay`` (the forecast's delay law needs them).
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
    budget: int | None = None
    run_id: str = ""
    varied: dict[str, Any] = field(default_factory=dict)
    lr: float | None = None
    weight_decay: float | None = None

    @classmethod
    def from_points(cls, points: Mapping[str, Mapping[int, float]],
                    **fields: Any) -> MemberSeries:
        """A member read back from {metric: {epoch: value}} (a tracked run's histories): a
        column per metric in epoch order, its evaluations the epochs of ``test_acc`` (the
        loop measures it at every one). ``fields``: the other attributes; the grok epochs
        are left to ``grokking.grok_epochs``."""
        columns = {name: ([int(e) for e in sorted(values)],
                          [float(values[e]) for e in sorted(values)])
                   for name, values in points.items()}
        epochs = list(columns.get("test_acc", ([], []))[0])
        return cls(epochs=epochs, columns=columns, last_epoch=epochs[-1] if epochs else 0,
                   **fields)

    @property
    def grokking_delay(self) -> int | None:
        """Test grok epoch − train grok epoch; None when either was not reached."""
        if self.train_grok_epoch is None or self.test_grok_epoch is None:
            return None
        return self.test_grok_epoch - self.train_grok_epoch

    @property
    def metrics(self) -> dict[str, list[float]]:
        """Each column's values (for the loop's metrics, one per entry of ``epochs``)."""
        return {name: values for name, (_, values) in self.columns.items()}

    def values(self, name: str) -> list[float]:
        """One column's values (empty if the member has no such column)."""
        return self.columns.get(name, ([], []))[1]

    def epochs_of(self, name: str) -> list[int]:
        """The epochs one column was measured at (empty if the member has no such column)."""
        return self.columns.get(name, ([], []))[0]

    def points(self, name: str) -> dict[int, float]:
        """{epoch: value} of one column."""
        return dict(zip(*self.columns.get(name, ([], [])), strict=True))

    def final(self, name: str) -> float | None:
        """One column's last value, or None."""
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

    def only(self, *names: str) -> MemberSeries:
        """A copy with only the named columns (what a figure worker needs of it)."""
        return MemberSeries(
            self.index, self.label, list(self.epochs),
            {n: (list(c[0]), list(c[1])) for n, c in self.columns.items() if n in names},
            self.train_grok_epoch, self.test_grok_epoch, self.status, self.reason,
            self.last_epoch, self.threshold, self.budget, self.run_id, dict(self.varied),
            self.lr, self.weight_decay)

    def merge(self, loop: MemberSeries) -> None:
        """The loop's series of the same member into this one (the diagnostics' own): its
        evaluated epochs, the columns this one lacks, and what became of the member."""
        self.epochs = list(loop.epochs)
        for name, (epochs, values) in loop.columns.items():
            if name not in self.columns:
                self.columns[name] = (list(epochs), list(values))
        self.train_grok_epoch, self.test_grok_epoch = loop.train_grok_epoch, loop.test_grok_epoch
        self.status, self.reason, self.last_epoch = loop.status, loop.reason, loop.last_epoch


@dataclass
class MemberSnapshots:
    """What the diagnostics keep of one member: its series (the loop's metrics and the
    probes'), and what is not a series: the DRC curves, cosine matrices and embedding values
    at chosen epochs, and the final weights.

    The arrays are numpy arrays (made by the diagnostics, or read back from checkpoints).
    """

    series: MemberSeries = field(default_factory=MemberSeries)
    drc_rates: list[float] = field(default_factory=list)
    drc: dict[int, list[float]] = field(default_factory=dict)  # epoch -> accuracy per rate
    cosine: dict[int, Any] = field(default_factory=dict)  # epoch -> (P, P) cosine matrix
    embedding_values: dict[int, Any] = field(default_factory=dict)  # epoch -> (P·d,) values
    final: dict[str, Any] = field(default_factory=dict)  # parameter name -> final weights
    mc_rate: float = 0.3
    embedding_activation: str = "none"  # the embedding's figures show it after this

    @property
    def label(self) -> str:
        """The member's label (its series')."""
        return self.series.label
