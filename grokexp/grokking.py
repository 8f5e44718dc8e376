"""The grokking rules, written once: when a series reaches a level, when it rises, when its
change sets in, and when a member is censored.

The training loop, the diagnostics, the figures, the paper's claims, the forecast and the
study all date a member's grokking with these functions and nothing else. They take plain
sequences (epochs, values), so that they serve a series as the loop records it, as it is read
back from a tracked run, or as a test writes it by hand; no torch, so a figure worker needs
none.

- **grok epoch** at a threshold θ (the spec's ``metrics.grok_threshold``): the first evaluated
  epoch e with value(e) ≥ θ; None if there is none. A NaN value never reaches a threshold.
- **rise** (``RISE_LEVEL``): the grok epoch of the test accuracy at 0.5, the epoch from
  which half the pairs are right.
- **onset** of a change: with s the trailing mean of ``SMOOTH`` evaluations of the series,
  the first evaluated epoch e with (s(e) − s_first) / (s_last − s_first) ≥ ``ONSET_SHARE``,
  where s_first and s_last are the first and last finite values of s (see :func:`onset`).
- **censored**: a member whose test accuracy has no grok epoch within its budget
  (``train.epochs``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["Epochs", "Values", "RISE_LEVEL", "SMOOTH", "ONSET_SHARE", "reached", "grok_epoch",
           "rise_epoch", "grokking_delay", "grok_epochs", "censored", "smooth", "onset"]

Epochs = Sequence[int] | np.ndarray  # evaluated epochs, increasing, (N,)
Values = Sequence[float] | np.ndarray  # a metric's value at each of them, (N,)

# "a substantial rise in test accuracy" (Fig. 5a): the first epoch half the test pairs are right
RISE_LEVEL = 0.5
SMOOTH = 5  # evaluations in the trailing mean of the onset rule
ONSET_SHARE = 0.5  # share of the first-to-last (smoothed) change that marks the onset


def reached(value: float, threshold: float) -> bool:
    """Whether one evaluated value reaches the threshold (value ≥ threshold; NaN never)."""
    return bool(value >= threshold)


def grok_epoch(epochs: Epochs, values: Values, threshold: float) -> int | None:
    """The first evaluated epoch whose value reaches ``threshold``, or None if none does."""
    if len(epochs) != len(values):
        raise ValueError(f"{len(epochs)} epochs but {len(values)} values")
    return next((int(e) for e, v in zip(epochs, values, strict=True) if reached(v, threshold)),
                None)


def rise_epoch(epochs: Epochs, test_acc: Values, level: float = RISE_LEVEL) -> int | None:
    """The test rise: the first evaluated epoch with test accuracy ≥ ``level`` (0.5), or None."""
    return grok_epoch(epochs, test_acc, level)


def grokking_delay(train_grok: int | None, test_grok: int | None) -> int | None:
    """Test grok epoch − train grok epoch; None when either was not reached."""
    return None if train_grok is None or test_grok is None else test_grok - train_grok


def grok_epochs(columns: Mapping[str, tuple[Sequence[int], Sequence[float]]],
                threshold: float) -> tuple[int | None, int | None]:
    """(train, test) grok epochs of a member's columns ``train_acc`` and ``test_acc``."""
    empty: tuple[Sequence[int], Sequence[float]] = ([], [])
    return (grok_epoch(*columns.get("train_acc", empty), threshold),
            grok_epoch(*columns.get("test_acc", empty), threshold))


def censored(test_grok: int | None, budget: int | None) -> bool:
    """Whether the member did not generalise within its budget: no test grok epoch, or one
    after ``budget`` (a budget of None is not known: only a missing grok epoch censors)."""
    return test_grok is None or (budget is not None and test_grok > budget)


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


def onset(epochs: ArrayLike, values: ArrayLike, share: float = ONSET_SHARE,
          window: int = SMOOTH) -> int | None:
    """The onset of a series' change: the first evaluated epoch e with

        (s(e) − s_first) / (s_last − s_first) ≥ share      (share = 0.5)

    where s is the trailing mean of ``window`` (5) evaluations (:func:`smooth`) and s_first,
    s_last its first and last finite values. The same rule for a rise and a fall. A series that
    does not change (|s_last − s_first| ≤ 1e-12 · max(|s_first|, |s_last|), or fewer than two
    finite values of s) has no onset: None.

    It reads the whole series (the last value fixes the change), so it dates an onset after
    the fact; and the trailing mean lags a steady trend by (window − 1) / 2 evaluations.
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
    hit = np.flatnonzero(progress >= share)
    return int(np.asarray(epochs)[finite[hit[0]]]) if hit.size else None
