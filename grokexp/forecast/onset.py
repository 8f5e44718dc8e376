"""When a series changes: one change-point rule, the test rise and a turning point.

The rule and its parameters were fixed before any result was looked at: a series is smoothed
by a trailing mean of ``SMOOTH`` evaluations, and its onset is the first evaluated epoch at
which the smoothed series has covered ``FRACTION`` of its change from its first to its last
smoothed value.

The rule reads the whole series (its last value fixes the change), so it dates an onset after
the fact; it is not an online signal. The trailing mean lags a steady trend by
(``SMOOTH`` − 1) / 2 evaluations (2, i.e. 20 epochs at ``metrics.every = 10``), so every onset
is that much late and every lead that much short. The end point is each member's last
evaluation: for a member that generalised that is ``train.stop_after_generalized`` epochs
after its test grok epoch (the same point relative to its own rise for every member), for one
that did not, the budget. A fixed epoch for all members was not used: members that stop early
have no value there.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["SMOOTH", "FRACTION", "RISE", "smooth", "change_point", "rise_epoch",
           "turning_point"]

SMOOTH = 5  # evaluations in the trailing mean
FRACTION = 0.5  # share of the start-to-end change that marks the onset
RISE = 0.5  # the test rise: the first epoch with test accuracy >= 0.5


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
