"""Every indicator over a population: lead time, how often it leads, early separation, forecast.

``analyse(members)`` is the whole table; ``to_json`` and ``table_text`` are its two faces
(``--json`` and the terminal). Onsets, rises and grok epochs are ``grokexp.grokking``'s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..grokking import ONSET_SHARE, RISE_LEVEL, onset
from ..series import MemberSeries
from .history import (
    early_epoch,
    generalised,
    indicator_series,
    known_early,
    member_rise,
    target_epochs,
    turning_point,
)
from .predict import (
    EARLY_SHARE,
    LawFacts,
    calibrated_scale,
    delay_law,
    extrapolate,
    level_at,
    mdape,
    scaled,
    value_at,
)
from .separation import bootstrap_auc, roc_auc

__all__ = ["aligned", "IndicatorRow", "ForecastRow", "MemberRow", "Report", "analyse", "table_text",
           "FORECASTERS", "DELAY_LAW", "CHANGE"]

# The forecasts made (name → indicator extrapolated); "median" forecasts the others' median.
FORECASTERS = {"log ‖θ‖², measured rate": "log_weight_norm_sq",
               "embedding_cos_structure": "embedding_cos_structure",
               "embedding_fourier_share": "embedding_fourier_share"}
TURNING = ("test_loss",)  # these also get a row for their turning point (the peak)
CHANGE = f"{ONSET_SHARE:.0%} change"  # the onset rule's name in the table ("50% change")
DELAY_LAW = "delay law, c · lr · wd"


@dataclass
class IndicatorRow:
    """One indicator's row of the table: how early it moves before the test rise, and how
    well its early value tells the members that generalise from those that do not."""

    name: str
    rule: str  # CHANGE (grokking.onset) or "peak"
    rising: int  # members whose test accuracy reached RISE_LEVEL
    with_onset: int  # of those, members where the indicator had an onset
    lead_median: float | None  # epochs before the rise (negative: after it)
    lead_min: float | None
    lead_max: float | None
    lead_share_median: float | None  # lead / grokking delay
    first: int  # rising members whose onset came strictly before the rise
    auc: float | None  # value at the early epoch: generalised within the budget or not
    # (members that generalised by the early epoch, or stopped before it, are left out)
    auc_low: float | None
    auc_high: float | None
    auc_members: int
    leads: list[float] = field(default_factory=list)  # one per member with an onset


@dataclass
class ForecastRow:
    """One forecaster's row: its error on the held-out members' test grok epochs (MdAPE)
    and how often it told "within the budget or not" right."""

    method: str
    held_out: int  # members forecast (they generalised after their early epoch)
    mdape: float | None
    within_budget_right: int  # members whose "within the budget or not" the forecast got
    judged: int  # members judged (all but those generalised by the early epoch)
    missing: int = 0  # members without the indicator: no forecast for them


@dataclass
class MemberRow:
    """One member: its grok epochs, the epoch its early values are read at, and each
    forecaster's guess of its test grok epoch."""

    label: str
    run_id: str
    train_grok_epoch: int | None
    rise_epoch: int | None
    test_grok_epoch: int | None
    budget: int
    early_epoch: int
    forecasts: dict[str, float | None] = field(default_factory=dict)


@dataclass
class Report:
    """What ``grokexp forecast`` prints and logs: members, indicators, forecasters."""

    members: list[MemberRow]
    indicators: list[IndicatorRow]
    forecasts: list[ForecastRow]

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data (``--json``, ``forecast.json``); NaN becomes null."""
        def clean(x: Any) -> Any:
            if isinstance(x, np.generic):
                x = x.item()
            if isinstance(x, float) and not math.isfinite(x):
                return None if math.isnan(x) else "inf"
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, list):
                return [clean(v) for v in x]
            return x
        return clean({"rise_level": RISE_LEVEL, "early_share": EARLY_SHARE,
                      "members": [asdict(m) for m in self.members],
                      "indicators": [asdict(r) for r in self.indicators],
                      "forecasts": [asdict(f) for f in self.forecasts]})


def _indicator_row(name: str, rule: str, members: Sequence[MemberSeries],
                   series: Sequence[dict[str, np.ndarray]]) -> IndicatorRow:
    leads, shares = [], []
    rising = with_onset = first = 0
    scores, labels = [], []
    for member, ind in zip(members, series, strict=True):
        values = ind.get(name)
        if values is None:
            continue
        epochs = target_epochs(member)
        value = value_at(epochs, values, early_epoch(member))
        if known_early(member) and math.isfinite(value):
            scores.append(value)
            labels.append(generalised(member))
        rise = member_rise(member)
        if rise is None:
            continue
        rising += 1
        start = (turning_point if rule == "peak" else onset)(epochs, values)
        if start is None:
            continue
        with_onset += 1
        lead = rise - start
        leads.append(lead)
        first += lead > 0
        mem, grok = member.train_grok_epoch, member.test_grok_epoch
        if mem is not None and grok is not None and grok > mem:
            shares.append(lead / (grok - mem))
    auc = roc_auc(scores, labels)
    ci = bootstrap_auc(scores, labels) if auc is not None else None
    return IndicatorRow(
        name, rule, rising, with_onset,
        float(np.median(leads)) if leads else None,
        float(min(leads)) if leads else None, float(max(leads)) if leads else None,
        float(np.median(shares)) if shares else None, first, auc,
        ci[0] if ci else None, ci[1] if ci else None, len(scores), [float(x) for x in leads])


def _forecasts(members: Sequence[MemberSeries], series: Sequence[dict[str, np.ndarray]]
               ) -> dict[str, list[float | None]]:
    """Leave-one-out: each member's forecast from the level and scale of all the others."""
    early = [early_epoch(m) for m in members]
    grok = [m.test_grok_epoch for m in members]
    epochs = [target_epochs(m) for m in members]
    out: dict[str, list[float | None]] = {}
    for method, name in FORECASTERS.items():
        if not any(name in s for s in series):
            continue  # not logged at all: analyse reports the row as missing
        levels = [level_at(e, s[name], g) if g is not None and name in s else math.nan
                  for e, s, g in zip(epochs, series, grok, strict=True)]
        result: list[float | None] = []
        for i, s in enumerate(series):
            others = [j for j in range(len(members)) if j != i and grok[j] is not None
                      and math.isfinite(levels[j])]
            if name not in s or not others:
                result.append(None)
                continue
            level = float(np.median([levels[j] for j in others]))
            raw_others = [extrapolate(epochs[j], series[j][name], early[j], level)
                          for j in others]
            scale = calibrated_scale(raw_others, [float(grok[j]) for j in others],  # type: ignore[arg-type]
                                     [float(early[j]) for j in others])
            raw = extrapolate(epochs[i], s[name], early[i], level)
            result.append(scaled(raw, early[i], scale))
        out[method] = result
    out[DELAY_LAW] = delay_law([_law_facts(m, s) for m, s in zip(members, series, strict=True)],
                               early)
    others_median: list[float | None] = []
    for i in range(len(members)):
        known = [g for j, g in enumerate(grok) if j != i and g is not None]
        others_median.append(float(np.median(known)) if known else None)
    out["median of the others"] = others_median
    return out


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


def _forecast_row(method: str, values: Sequence[float | None],
                  members: Sequence[MemberSeries], missing: int = 0) -> ForecastRow:
    held, measured = [], []
    right = judged = 0
    for f, m in zip(values, members, strict=True):
        g, e = m.test_grok_epoch, early_epoch(m)
        if f is None or (g is not None and g <= e):
            continue  # no forecast, or generalised before anything needed forecasting
        judged += 1
        right += (f <= (m.budget or 0)) == generalised(m)
        if g is not None:
            held.append(f)
            measured.append(float(g))
    return ForecastRow(method, len(held), mdape(held, measured), right, judged, missing)


def analyse(members: Sequence[MemberSeries]) -> Report:
    """The whole table for a population of members."""
    series = [indicator_series(m) for m in members]
    names = sorted({n for s in series for n in s})
    rows = [_indicator_row(n, CHANGE, members, series) for n in names]
    rows += [_indicator_row(n, "peak", members, series) for n in TURNING if n in names]
    forecasts = _forecasts(members, series)
    rows_m = [MemberRow(m.label, m.run_id, m.train_grok_epoch, member_rise(m), m.test_grok_epoch,
                        m.budget or 0, early_epoch(m), {k: f[i] for k, f in forecasts.items()})
              for i, m in enumerate(members)]
    missing = {k: sum(n not in s for s in series) for k, n in FORECASTERS.items()}
    rows_f = [_forecast_row(k, f, members, missing.get(k, 0)) for k, f in forecasts.items()]
    rows_f += [ForecastRow(k, 0, None, 0, 0, len(members)) for k in FORECASTERS
               if k not in forecasts]
    return Report(rows_m, rows, rows_f)


def aligned(members: Sequence[MemberSeries], names: Sequence[str]
            ) -> dict[str, list[tuple[str, np.ndarray, np.ndarray]]]:
    """Per indicator, each rising member's (label, epoch − rise epoch, series scaled to 0 at
    its first value and 1 at its last): the curves side by side at the rise."""
    out: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {n: [] for n in names}
    for member in members:
        rise = member_rise(member)
        if rise is None:
            continue
        series = indicator_series(member)
        epochs = target_epochs(member)
        for name in names:
            v = series.get(name)
            ok = np.flatnonzero(np.isfinite(v)) if v is not None else np.array([], int)
            if v is None or ok.size < 2 or v[ok[-1]] == v[ok[0]]:
                continue
            scaled_v = (v[ok] - v[ok[0]]) / (v[ok[-1]] - v[ok[0]])
            out[name].append((member.label, epochs[ok] - rise, scaled_v))
    return out


def _num(x: float | None, fmt: str = "{:.0f}") -> str:
    if x is None:
        return "-"
    return "∞" if math.isinf(x) else fmt.format(x)


def table_text(report: Report) -> str:
    """The terminal table: one line per indicator, then the forecasts."""
    lines = [f"{len(report.members)} member(s); rise = first epoch with test acc ≥ "
             f"{RISE_LEVEL}; "
             f"early epoch = {EARLY_SHARE:.0%} of the budget",
             f"{'indicator':<28} {'rule':<10} {'onset':>7} {'lead median':>11} "
             f"{'range':>13} {'× delay':>8} {'first':>7}  {'AUC early (95% CI)':<20}"]
    for r in sorted(report.indicators, key=lambda r: math.inf if r.lead_median is None
                    else -r.lead_median):
        rng = "-" if r.lead_min is None else f"{r.lead_min:.0f}…{r.lead_max:.0f}"
        auc = "-" if r.auc is None else (f"{r.auc:.2f} ({r.auc_low:.2f}–{r.auc_high:.2f})"
                                         f" n={r.auc_members}")
        lines.append(f"{r.name:<28} {r.rule:<10} {r.with_onset:>3}/{r.rising:<3} "
                     f"{_num(r.lead_median):>11} {rng:>13} "
                     f"{_num(r.lead_share_median, '{:.2f}'):>8} "
                     f"{r.first:>3}/{r.rising:<3}  {auc}")
    lines.append("")
    lines.append(f"{'forecast of test_grok_epoch':<32} {'held out':>8} {'MdAPE':>7} "
                 f"{'within budget right':>20}")
    for f in report.forecasts:
        right = f"{f.within_budget_right}/{f.judged}"
        note = f"  ({f.missing} member(s) lack the indicator)" if f.missing else ""
        lines.append(f"{f.method:<32} {f.held_out:>8} {_num(f.mdape, '{:.1%}'):>7} "
                     f"{right:>20}{note}")
    return "\n".join(lines) + "\n"
