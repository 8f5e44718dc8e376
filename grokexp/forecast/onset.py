"""When a series changes: one change-point rule, the test rise and a turning point.

The rule and its parameters were fixed before any result was looked at: a series is smoothed
by a trailing mean of ``SMOOTH`` evaluations (causal, so a pruner can use it online), and its
onset is the first evaluated epoch at which the smoothed series has covered ``FRACTION`` of
its change from its first to its last smoothed value.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["SMOOTH", "FRACTION", "smooth", "change_point", "rise_epoch", "turning_point"]

SMOOTH = 5  # evaluations in the trailing mean
FRACTION = 0.5  # share of the start-to-end change that marks the onset


def smooth(values: ArrayLike, window: int = SMOOTH) -> np.ndarray:
    """Trailing mean over ``window`` values (fewer at the start); NaNs are skipped."""
    x = np.asarray(values, dtype=float)
    out = np.full(x.shape, np.nan)
    for i in range(len(x)):
        part = x[max(0, i - window + 1): i + 1]
        part = part[np.isfinite(part)]
        if part.size:
            out[i] = part.mean()
    return out


def change_point(epochs: ArrayLike, values: ArrayLike, fraction: float = FRACTION,
                 window: int = SMOOTH) -> int | None:
    """First epoch at which the smoothed series has made ``fraction`` of its whole change.

    The change runs from the first to the last finite smoothed value; a series that does not
    change (|change| ≤ 1e-12 · its scale, or fewer than two finite values) has no onset.
    """
    s = smooth(values, window)
    finite = np.flatnonzero(np.isfinite(s))
    if finite.size < 2:
        return None
    start, end = s[finite[0]], s[finite[-1]]
    change = end - start
    scale = max(abs(start), abs(end), 1e-300)
    if abs(change) <= 1e-12 * scale:
        return None
    progress = (s[finite] - start) / change
    hit = np.flatnonzero(progress >= fraction)
    return int(np.asarray(epochs)[finite[hit[0]]]) if hit.size else None


def rise_epoch(epochs: ArrayLike, values: ArrayLike, level: float) -> int | None:
    """First evaluated epoch at which the (raw) series is ≥ ``level``: the test rise."""
    hit = np.flatnonzero(np.asarray(values, dtype=float) >= level)
    return int(np.asarray(epochs)[hit[0]]) if hit.size else None


def turning_point(epochs: ArrayLike, values: ArrayLike,
                  window: int = SMOOTH) -> int | None:
    """Epoch of the smoothed series' highest value, if it then falls (not at the last value).

    The test loss climbs while a network memorises and turns once it starts to generalise.
    """
    s = smooth(values, window)
    finite = np.flatnonzero(np.isfinite(s))
    if finite.size < 2:
        return None
    peak = finite[np.argmax(s[finite])]
    return None if peak == finite[-1] else int(np.asarray(epochs)[peak])
