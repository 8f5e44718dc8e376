"""The forecasters of the test grok epoch, each leave-one-out, at each share of the budget
(``SHARES``: 20 % and 40 %), and their rows of the table: MdAPE and "within the budget or not".

- extrapolation (``FORECASTERS``): a line through the indicator's last values to the level the
  others had at their grok epoch, scaled by the others' ratio of measured to extrapolated
  time (``predict.extrapolate``); ``fourier_gini`` is one of them;
- onset + lead (``ONSET_LEAD``, ``onset_lead.py``): the member's onset by the early epoch plus
  the others' median onset-to-grok lead;
- the delay law, and the yardstick: the others' median test grok epoch.

The Fourier progress measures (``FOURIER``) are logged only by newer runs; a forecaster whose
indicator no member has gets a row saying so and no numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..series import MemberSeries
from .history import early_epoch, generalised, target_epochs
from .onset_lead import onset_lead
from .predict import (
    SHARES,
    LawFacts,
    calibrated_scale,
    delay_law,
    extrapolate,
    level_at,
    mdape,
    scaled,
    value_at,
)

__all__ = ["FORECASTERS", "ONSET_LEAD", "FOURIER", "DELAY_LAW", "MEDIAN", "ForecastRow",
           "forecasts", "forecast_rows"]

# The extrapolations made (name → indicator extrapolated).
FORECASTERS = {"log ‖θ‖², measured rate": "log_weight_norm_sq",
               "embedding_cos_structure": "embedding_cos_structure",
               "embedding_fourier_share": "embedding_fourier_share",
               "fourier_gini": "fourier_gini"}
# Onset + lead: the codiagonal structure (it leads the rise most steadily in forecast.toml)
# and the Fourier-restricted loss (its fall marks the circuit forming).
ONSET_LEAD = {"onset + lead: embedding_cos_structure": "embedding_cos_structure",
              "onset + lead: fourier_restricted_loss": "fourier_restricted_loss"}
FOURIER = ("fourier_restricted_loss", "fourier_excluded_loss", "fourier_gini")
DELAY_LAW = "delay law, c · lr · wd"
MEDIAN = "median of the others"


@dataclass
class ForecastRow:
    """One forecaster at one share of the budget: its error on the held-out members' test
    grok epochs (MdAPE) and how often it told "within the budget or not" right."""

    method: str
    share: float  # the forecast is made at this share of each member's budget
    held_out: int  # members forecast (they generalised after their early epoch)
    mdape: float | None
    within_budget_right: int  # members whose "within the budget or not" the forecast got
    judged: int  # members judged (all but those generalised by the early epoch)
    missing: int = 0  # members without the indicator: no forecast for them
    not_yet: int = 0  # judged members without an onset by the early epoch (onset + lead)


def forecasts(members: Sequence[MemberSeries], series: Sequence[dict[str, np.ndarray]],
              share: float) -> tuple[dict[str, list[float | None]], dict[str, list[bool]]]:
    """Every forecaster's forecast for each member from what is known at ``share`` of its
    budget, each calibrated on the other members; and which onset + lead forecasts are
    "not yet"."""
    early = [early_epoch(m, share) for m in members]
    grok = [m.test_grok_epoch for m in members]
    epochs = [target_epochs(m) for m in members]
    out: dict[str, list[float | None]] = {}
    not_yet: dict[str, list[bool]] = {}
    for method, name in FORECASTERS.items():
        if any(name in s for s in series):
            out[method] = _extrapolated(name, epochs, series, grok, early)
    for method, name in ONSET_LEAD.items():
        if any(name in s for s in series):
            result = onset_lead(epochs, [s.get(name) for s in series], grok, early)
            out[method] = [r.forecast for r in result]
            not_yet[method] = [r.not_yet for r in result]
    out[DELAY_LAW] = delay_law([_law_facts(m, s) for m, s in zip(members, series, strict=True)],
                               early)
    others_median: list[float | None] = []
    for i in range(len(members)):
        known = [g for j, g in enumerate(grok) if j != i and g is not None]
        others_median.append(float(np.median(known)) if known else None)
    out[MEDIAN] = others_median
    return out, not_yet


def _extrapolated(name: str, epochs: Sequence[np.ndarray],
                  series: Sequence[dict[str, np.ndarray]], grok: Sequence[int | None],
                  early: Sequence[int]) -> list[float | None]:
    """Leave-one-out: each member's forecast from the level and scale of all the others."""
    levels = [level_at(e, s[name], g) if g is not None and name in s else math.nan
              for e, s, g in zip(epochs, series, grok, strict=True)]
    result: list[float | None] = []
    for i, s in enumerate(series):
        others = [j for j in range(len(series)) if j != i and grok[j] is not None
                  and math.isfinite(levels[j])]
        if name not in s or not others:
            result.append(None)
            continue
        level = float(np.median([levels[j] for j in others]))
        raw_others = [extrapolate(epochs[j], series[j][name], early[j], level) for j in others]
        scale = calibrated_scale(raw_others, [float(grok[j]) for j in others],  # type: ignore[arg-type]
                                 [float(early[j]) for j in others])
        raw = extrapolate(epochs[i], s[name], early[i], level)
        result.append(scaled(raw, early[i], scale))
    return result


def _law_facts(member: MemberSeries, series: dict[str, np.ndarray]) -> LawFacts | None:
    """(T_mem, log ‖θ_mem‖², T_grok, log ‖θ_grok‖², lr · wd), or None when the member has
    not memorised or its norm, lr or weight decay is not known."""
    log_sq = series.get("log_weight_norm_sq")
    mem, grok = member.train_grok_epoch, member.test_grok_epoch
    if log_sq is None or mem is None or member.lr is None or not member.weight_decay:
        return None
    epochs = target_epochs(member)
    l_grok = value_at(epochs, log_sq, grok) if grok is not None else math.nan
    return mem, value_at(epochs, log_sq, mem), grok, l_grok, member.lr * member.weight_decay


def _row(method: str, share: float, values: Sequence[float | None],
         members: Sequence[MemberSeries], missing: int, not_yet: Sequence[bool]) -> ForecastRow:
    held, measured = [], []
    right = judged = waiting = 0
    for i, (f, m) in enumerate(zip(values, members, strict=True)):
        g, e = m.test_grok_epoch, early_epoch(m, share)
        if f is None or (g is not None and g <= e):
            continue  # no forecast, or generalised before anything needed forecasting
        judged += 1
        waiting += bool(not_yet and not_yet[i])
        right += (f <= (m.budget or 0)) == generalised(m)
        if g is not None:
            held.append(f)
            measured.append(float(g))
    return ForecastRow(method, share, len(held), mdape(held, measured), right, judged, missing,
                       waiting)


def forecast_rows(members: Sequence[MemberSeries], series: Sequence[dict[str, np.ndarray]]
                  ) -> tuple[list[dict[str, list[float | None]]], list[ForecastRow]]:
    """Each share's forecasts (one dict per share in ``SHARES``) and every forecaster's rows,
    share by share (the first share's rows first)."""
    names = {**FORECASTERS, **ONSET_LEAD}
    missing = {k: sum(n not in s for s in series) for k, n in names.items()}
    per_share, rows = [], []
    for share in SHARES:
        made, not_yet = forecasts(members, series, share)
        per_share.append(made)
        rows += [_row(k, share, f, members, missing.get(k, 0), not_yet.get(k, []))
                 for k, f in made.items()]
        rows += [ForecastRow(k, share, 0, None, 0, 0, len(members)) for k in names
                 if k not in made]
    return per_share, rows
