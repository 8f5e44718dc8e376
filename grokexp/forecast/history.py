"""A member's history as the forecast sees it, and the indicators derived from it.

A :class:`Trajectory` is plain data (epochs, one array per logged metric, the budget and the
threshold), built by whoever read the run: the CLI from MLflow, the tests by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .onset import rise_epoch

__all__ = ["Trajectory", "indicator_series", "OSCILLATION_WINDOW", "TARGET", "SKIP"]

OSCILLATION_WINDOW = 10  # evaluations over which the loss-oscillation score is an RMS
TARGET = "test_acc"  # what the indicators should warn of
# Logged keys that are not indicators: the target, summaries and per-seed copies.
SKIP = ("test_acc", "train_grok_epoch", "test_grok_epoch", "grokking_delay", "objective")


@dataclass
class Trajectory:
    """One member: evaluated epochs (N,), each metric's values at them (N,), NaN where a
    metric was not measured, and what the member was given."""

    label: str
    epochs: np.ndarray
    series: dict[str, np.ndarray]
    budget: int  # train.epochs
    threshold: float = 0.95  # metrics.grok_threshold
    run_id: str = ""
    varied: dict[str, Any] = field(default_factory=dict)
    lr: float | None = None  # train.lr and train.weight_decay: the delay law's rate
    weight_decay: float | None = None

    @classmethod
    def from_points(cls, label: str, points: Mapping[str, Mapping[int, float]], budget: int,
                    threshold: float = 0.95, **extra: Any) -> Trajectory:
        """From {metric: {epoch: value}}; the epochs are those of the target metric."""
        epochs = np.array(sorted(points[TARGET]), dtype=int)
        series = {name: np.array([vals.get(int(e), np.nan) for e in epochs], dtype=float)
                  for name, vals in points.items()}
        return cls(label, epochs, series, budget, threshold, **extra)

    def rise(self, level: float) -> int | None:
        return rise_epoch(self.epochs, self.series[TARGET], level)

    @property
    def test_grok_epoch(self) -> int | None:
        return self.rise(self.threshold)

    @property
    def train_grok_epoch(self) -> int | None:
        train = self.series.get("train_acc")
        return None if train is None else rise_epoch(self.epochs, train, self.threshold)

    @property
    def generalised(self) -> bool:
        """Reached the threshold within the budget."""
        t = self.test_grok_epoch
        return t is not None and t <= self.budget


def _oscillation(log_loss: np.ndarray, window: int) -> np.ndarray:
    """RMS of the loss's second difference over the last ``window`` evaluations.

    The second difference x_{i-2} − 2x_{i-1} + x_i passes only the fastest wiggles of the
    (log) training loss, the oscillations that Notsawo et al. read as a sign of grokking. It is
    backward (causal): the score at evaluation i uses nothing after i; the first two
    evaluations have no second difference.
    """
    d2 = np.full(log_loss.shape, np.nan)
    d2[2:] = log_loss[:-2] - 2 * log_loss[1:-1] + log_loss[2:]
    out = np.full(log_loss.shape, np.nan)
    for i in range(len(d2)):
        part = d2[max(0, i - window + 1): i + 1]
        part = part[np.isfinite(part)]
        if part.size:
            out[i] = float(np.sqrt(np.mean(part**2)))
    return out


def indicator_series(traj: Trajectory, names: Sequence[str] | None = None
                     ) -> dict[str, np.ndarray]:
    """Every logged metric but the target, and the derived indicators, each (N,).

    Derived: ``log_weight_norm_sq`` (log ‖θ‖²), ``log_norm_ratio`` (log(‖θ_t‖² / ‖θ_mem‖²),
    NaN before the train accuracy reaches the threshold: the delay law's ratio, known online)
    and ``loss_oscillation`` (see :func:`_oscillation`).
    """
    out = {n: v for n, v in traj.series.items()
           if n not in SKIP and not n.startswith("seed") and (names is None or n in names)}
    norm = traj.series.get("weight_norm")
    if norm is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            log_sq = np.log(norm**2)
        out["log_weight_norm_sq"] = log_sq
        mem = traj.train_grok_epoch
        ratio = np.full(log_sq.shape, np.nan)
        if mem is not None:
            at = int(np.flatnonzero(traj.epochs == mem)[0])
            ratio[at:] = log_sq[at:] - log_sq[at]
        out["log_norm_ratio"] = ratio
    loss = traj.series.get("train_loss")
    if loss is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            out["loss_oscillation"] = _oscillation(np.log(np.maximum(loss, 1e-300)),
                                                   OSCILLATION_WINDOW)
    return out
