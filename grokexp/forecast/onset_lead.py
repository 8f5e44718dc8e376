"""Onset + lead: a member's test grok epoch as the epoch its indicator's change set in, plus
the time the other members took from that onset to their own test grok epoch.

The onset is ``grokexp.grokking.onset``'s rule (the trailing mean of ``SMOOTH`` evaluations
has covered ``ONSET_SHARE`` of its change), read causally: at the early epoch a member's
last value, and so its whole change, is not known yet. The change is therefore the median of
the other members' whole changes (first to last smoothed value, members that generalised),
and a member's onset is the first epoch by the early epoch where its smoothed series has
moved half that far from its first value. The others' leads are measured with the same rule
and the same change on their whole series (they are finished: the calibration set), so the
member is never part of its own calibration (leave-one-out).

A member whose onset has not come by its early epoch is **not yet**: its forecast is the
later of (early epoch + the others' median lead), the soonest it can come, and the median
test grok epoch of the other members that generalised and were also "not yet" at their own
early epoch (the yardstick, conditioned on what is known).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ..grokking import ONSET_SHARE, SMOOTH, smooth

__all__ = ["whole_change", "onset_by", "OnsetLead", "onset_lead"]


def whole_change(values: ArrayLike, window: int = SMOOTH) -> float:
    """s_last − s_first of the trailing mean (NaN without two finite values)."""
    s = smooth(values, window)
    finite = np.flatnonzero(np.isfinite(s))
    return float(s[finite[-1]] - s[finite[0]]) if finite.size >= 2 else math.nan


def onset_by(epochs: ArrayLike, values: ArrayLike, upto: float, change: float,
             share: float = ONSET_SHARE, window: int = SMOOTH) -> int | None:
    """The first evaluated epoch e ≤ ``upto`` with (s(e) − s_first) / change ≥ ``share``,
    s the trailing mean of ``window`` evaluations: ``grokking.onset`` with the change given
    rather than read from the (not yet known) last value. None if none by ``upto``."""
    e = np.asarray(epochs)
    v = np.asarray(values, dtype=float)
    if not math.isfinite(change) or change == 0:
        return None
    keep = np.flatnonzero(e <= upto)
    s = smooth(v[keep], window)  # trailing: the same values as on the whole series
    finite = np.flatnonzero(np.isfinite(s))
    if not finite.size:
        return None
    hit = np.flatnonzero((s[finite] - s[finite[0]]) / change >= share)
    return int(e[keep][finite[hit[0]]]) if hit.size else None


@dataclass
class OnsetLead:
    """One member's onset-plus-lead forecast (None: no indicator, or no calibration)."""

    forecast: float | None
    onset: int | None  # the member's onset by its early epoch (None: not yet)
    lead: float | None  # the others' median test grok epoch − onset
    not_yet: bool  # no onset by the early epoch: scored as the module says


def onset_lead(epochs: Sequence[np.ndarray], values: Sequence[np.ndarray | None],
               grok: Sequence[int | None], early: Sequence[int]) -> list[OnsetLead]:
    """Every member's forecast, each calibrated on the other members only.

    ``values[i]`` is member i's indicator on ``epochs[i]`` (None: not logged for it),
    ``grok[i]`` its test grok epoch (None: never), ``early[i]`` the epoch its forecast is
    made at.
    """
    n = len(epochs)
    changes = [whole_change(v) if v is not None and grok[j] is not None else math.nan
               for j, v in enumerate(values)]
    out: list[OnsetLead] = []
    for i in range(n):
        vi = values[i]
        others = [j for j in range(n) if j != i and math.isfinite(changes[j])]
        if vi is None or not others:
            out.append(OnsetLead(None, None, None, False))
            continue
        change = float(np.median([changes[j] for j in others]))
        leads = []
        for j in others:
            vj = values[j]
            assert vj is not None and grok[j] is not None  # a finite change: both known
            start = onset_by(epochs[j], vj, math.inf, change)
            if start is not None:
                leads.append(float(grok[j]) - start)  # type: ignore[arg-type]
        if not leads:
            out.append(OnsetLead(None, None, None, False))
            continue
        lead = float(np.median(leads))
        mine = onset_by(epochs[i], vi, early[i], change)
        if mine is not None:
            out.append(OnsetLead(mine + lead, mine, lead, False))
            continue
        late = [float(g) for j, g in enumerate(grok)
                if j != i and g is not None and g > early[j] and values[j] is not None
                and onset_by(epochs[j], values[j], early[j], change) is None]  # type: ignore[arg-type]
        floor = early[i] + lead
        out.append(OnsetLead(max(floor, float(np.median(late))) if late else floor,
                             None, lead, True))
    return out
