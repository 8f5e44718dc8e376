"""A member's series as the forecast reads it, and the indicators derived from it.

The forecast reads :class:`~grokexp.series.MemberSeries` (built by whoever read the run: the
CLI from MLflow through the tracking's ``RunReader``, the tests with
:func:`member_from_points`). Its numbers are numpy
arrays on the target's evaluated epochs, made from the series when needed (:func:`grid`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..grokking import SMOOTH, censored, grok_epochs, rise_epoch, smooth
from ..series import MemberSeries
from .predict import EARLY_SHARE

__all__ = ["member_from_points", "grid", "target_epochs", "indicator_series", "member_rise",
           "generalised", "early_epoch", "known_early", "is_frozen", "turning_point",
           "OSCILLATION_WINDOW", "TARGET", "SKIP"]

OSCILLATION_WINDOW = 10  # evaluations over which the loss-oscillation score is an RMS
TARGET = "test_acc"  # what the indicators should warn of
# Logged keys that are not indicators: the target, summaries and per-seed copies.
SKIP = ("test_acc", "train_grok_epoch", "test_grok_epoch", "grokking_delay", "objective")


def member_from_points(label: str, points: Mapping[str, Mapping[int, float]], budget: int,
                       threshold: float = 0.95, **context: Any) -> MemberSeries:
    """A member read back from {metric: {epoch: value}}, its grok epochs by the one rule;
    ``context``: ``run_id``, ``varied``, ``lr``, ``weight_decay``."""
    series = MemberSeries.from_points(points, label=label, threshold=threshold, budget=budget,
                                      **context)
    series.train_grok_epoch, series.test_grok_epoch = grok_epochs(series.columns, threshold)
    return series


def target_epochs(member: MemberSeries) -> np.ndarray:
    """The epochs the target (test accuracy) was evaluated at, (N,), increasing and each
    once: the forecast's grid."""
    return np.array(sorted(set(member.epochs_of(TARGET))), dtype=int)


def grid(member: MemberSeries) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The target's epochs (N,) and every column's values at them (N,), NaN where a metric
    was not measured at an epoch."""
    epochs = target_epochs(member)
    columns = {}
    for name in member.columns:
        points = member.points(name)
        columns[name] = np.array([points.get(int(e), np.nan) for e in epochs], dtype=float)
    return epochs, columns


def member_rise(member: MemberSeries) -> int | None:
    """The test rise: the first epoch with test accuracy ≥ ``RISE_LEVEL``."""
    points = member.points(TARGET)
    epochs = target_epochs(member)
    return rise_epoch(epochs, [points[int(e)] for e in epochs])


def generalised(member: MemberSeries) -> bool:
    """Reached the threshold within the budget."""
    return not censored(member.test_grok_epoch, member.budget)


def early_epoch(member: MemberSeries, share: float = EARLY_SHARE) -> int:
    """The last evaluated epoch at or before ``share`` of the budget."""
    epochs = target_epochs(member)
    known = epochs[epochs <= share * (member.budget or 0)]
    return int(known[-1]) if known.size else int(epochs[0])


def known_early(member: MemberSeries, share: float = EARLY_SHARE) -> bool:
    """Whether the member's value at its early epoch says something about its future: it had
    not generalised by then (else the value is a post-grok one) and was still evaluated at
    ``share`` of its budget (else the value is its last one, from before)."""
    g = member.test_grok_epoch
    return ((g is None or g > early_epoch(member, share))
            and target_epochs(member)[-1] >= share * (member.budget or 0))


def is_frozen(settings: Mapping[str, Any]) -> bool:
    """Whether some init group does not train: a key ``init[.<group>].trainable`` (a param or
    a varied value, ``varied.`` prefix allowed) that is false. Such a member cannot generalise
    for a reason no indicator needs to foresee."""
    for key, value in settings.items():
        key = key.removeprefix("varied.")
        if key.startswith("init.") and key.endswith("trainable"):
            if value is False or str(value).strip().lower() == "false":
                return True
    return False


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


def indicator_series(member: MemberSeries, names: Sequence[str] | None = None
                     ) -> dict[str, np.ndarray]:
    """Every logged metric but the target, and the derived indicators, each (N,) on the
    target's epochs.

    Derived: ``log_weight_norm_sq`` (log ‖θ‖²), ``log_norm_ratio`` (log(‖θ_t‖² / ‖θ_mem‖²),
    NaN before the train accuracy reaches the threshold: the delay law's ratio, known online)
    and ``loss_oscillation`` (see :func:`_oscillation`).
    """
    epochs, columns = grid(member)
    out = {n: v for n, v in columns.items()
           if n not in SKIP and not n.startswith("seed") and (names is None or n in names)}
    norm = columns.get("weight_norm")
    if norm is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            log_sq = np.log(norm**2)
        out["log_weight_norm_sq"] = log_sq
        mem = member.train_grok_epoch
        ratio = np.full(log_sq.shape, np.nan)
        at = np.flatnonzero(epochs == mem) if mem is not None else np.array([], int)
        if at.size:
            ratio[at[0]:] = log_sq[at[0]:] - log_sq[at[0]]
        out["log_norm_ratio"] = ratio
    loss = columns.get("train_loss")
    if loss is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            out["loss_oscillation"] = _oscillation(np.log(np.maximum(loss, 1e-300)),
                                                   OSCILLATION_WINDOW)
    return out


def turning_point(epochs: ArrayLike, values: ArrayLike,
                  window: int = SMOOTH) -> int | None:
    """Epoch of the smoothed series' highest value, if it is a real maximum: after its first
    value (it rose to it) and before its last (it then falls). Otherwise None.

    The test loss climbs while a network memorises and turns once it starts to generalise; a
    series that only falls has no such turn, and must not be credited with one at its start.
    """
    s = smooth(values, window)
    finite = np.flatnonzero(np.isfinite(s))
    if finite.size < 3:
        return None
    peak_at = int(np.argmax(s[finite]))
    if peak_at in (0, finite.size - 1):  # argmax: the first of equal maxima
        return None
    return int(np.asarray(epochs)[finite[peak_at]])
