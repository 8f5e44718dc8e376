"""Every indicator over a population: lead time, how often it leads, early separation, forecast.

``analyse(members)`` is the whole table; ``to_json`` and ``table_text`` are its two faces
(``--json`` and the terminal). Onsets, rises and grok epochs are ``grokexp.grokking``'s; the
forecasters are ``forecasters.py``'s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..grokking import ONSET_SHARE, RISE_LEVEL, onset
from ..series import MemberSeries
from .forecasters import DELAY_LAW, FORECASTERS, MEDIAN, ONSET_LEAD, ForecastRow, forecast_rows
from .history import (
    early_epoch,
    generalised,
    indicator_series,
    is_frozen,
    known_early,
    member_rise,
    target_epochs,
    turning_point,
)
from .predict import EARLY_SHARE, LATE_SHARE, SHARES, value_at
from .separation import bootstrap_auc, roc_auc

__all__ = ["aligned", "IndicatorRow", "ForecastRow", "MemberRow", "Report", "analyse",
           "table_text", "FORECASTERS", "ONSET_LEAD", "DELAY_LAW", "MEDIAN", "CHANGE"]

TURNING = ("test_loss",)  # these also get a row for their turning point (the peak)
CHANGE = f"{ONSET_SHARE:.0%} change"  # the onset rule's name in the table ("50% change")


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
    # the same AUC without the frozen members (some init group not trained): they cannot
    # generalise whatever the indicator says, so they make separation look easy
    auc_unfrozen: float | None = None
    auc_unfrozen_low: float | None = None
    auc_unfrozen_high: float | None = None
    auc_unfrozen_members: int = 0


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
    late_epoch: int = 0  # the epoch at LATE_SHARE of the budget, and the forecasts made there
    late_forecasts: dict[str, float | None] = field(default_factory=dict)
    frozen: bool = False


@dataclass
class Report:
    """What ``grokexp forecast`` prints and logs: members, indicators, forecasters."""

    members: list[MemberRow]
    indicators: list[IndicatorRow]
    forecasts: list[ForecastRow]  # each forecaster at EARLY_SHARE, then at LATE_SHARE

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
                      "late_share": LATE_SHARE,
                      "members": [asdict(m) for m in self.members],
                      "indicators": [asdict(r) for r in self.indicators],
                      "forecasts": [asdict(f) for f in self.forecasts]})


def _indicator_row(name: str, rule: str, members: Sequence[MemberSeries],
                   series: Sequence[dict[str, np.ndarray]], frozen: Sequence[bool]
                   ) -> IndicatorRow:
    leads, shares = [], []
    rising = with_onset = first = 0
    scores, labels, stuck = [], [], []
    for member, ind, fixed in zip(members, series, frozen, strict=True):
        values = ind.get(name)
        if values is None:
            continue
        epochs = target_epochs(member)
        value = value_at(epochs, values, early_epoch(member))
        if known_early(member) and math.isfinite(value):
            scores.append(value)
            labels.append(generalised(member))
            stuck.append(fixed)
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
    auc, low, high = _auc(scores, labels)
    keep = [k for k, fixed in enumerate(stuck) if not fixed]
    free = _auc([scores[k] for k in keep], [labels[k] for k in keep])
    return IndicatorRow(
        name, rule, rising, with_onset,
        float(np.median(leads)) if leads else None,
        float(min(leads)) if leads else None, float(max(leads)) if leads else None,
        float(np.median(shares)) if shares else None, first, auc, low, high, len(scores),
        [float(x) for x in leads], *free, len(keep))


def _auc(scores: Sequence[float], labels: Sequence[bool]
         ) -> tuple[float | None, float | None, float | None]:
    """ROC-AUC and its bootstrap interval (None without both classes)."""
    auc = roc_auc(scores, labels)
    ci = bootstrap_auc(scores, labels) if auc is not None else None
    return auc, ci[0] if ci else None, ci[1] if ci else None


def analyse(members: Sequence[MemberSeries], frozen: Sequence[bool] | None = None) -> Report:
    """The whole table for a population of members. ``frozen[i]``: member i has an init group
    that does not train (default: read from its varied values, ``history.is_frozen``)."""
    stuck = [is_frozen(m.varied) for m in members] if frozen is None else list(frozen)
    series = [indicator_series(m) for m in members]
    names = sorted({n for s in series for n in s})
    rows = [_indicator_row(n, CHANGE, members, series, stuck) for n in names]
    rows += [_indicator_row(n, "peak", members, series, stuck) for n in TURNING if n in names]
    (early, late), rows_f = forecast_rows(members, series)
    rows_m = [MemberRow(m.label, m.run_id, m.train_grok_epoch, member_rise(m), m.test_grok_epoch,
                        m.budget or 0, early_epoch(m), {k: f[i] for k, f in early.items()},
                        early_epoch(m, LATE_SHARE), {k: f[i] for k, f in late.items()}, stuck[i])
              for i, m in enumerate(members)]
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


def _auc_text(auc: float | None, low: float | None, high: float | None, n: int) -> str:
    return "-" if auc is None else f"{auc:.2f} ({low:.2f}–{high:.2f}) n={n}"


def _indicator_lines(report: Report, frozen: int) -> list[str]:
    head = (f"{'indicator':<28} {'rule':<10} {'onset':>7} {'lead median':>11} "
            f"{'range':>13} {'× delay':>8} {'first':>7}  {'AUC early (95% CI)':<24}")
    lines = [(head + (" AUC unfrozen (95% CI)" if frozen else "")).rstrip()]

    def order(r: IndicatorRow) -> float:
        return math.inf if r.lead_median is None else -r.lead_median

    for r in sorted(report.indicators, key=order):
        rng = "-" if r.lead_min is None else f"{r.lead_min:.0f}…{r.lead_max:.0f}"
        auc = _auc_text(r.auc, r.auc_low, r.auc_high, r.auc_members)
        line = (f"{r.name:<28} {r.rule:<10} {r.with_onset:>3}/{r.rising:<3} "
                f"{_num(r.lead_median):>11} {rng:>13} "
                f"{_num(r.lead_share_median, '{:.2f}'):>8} "
                f"{r.first:>3}/{r.rising:<3}  ")
        if frozen:
            line += f"{auc:<24} " + _auc_text(r.auc_unfrozen, r.auc_unfrozen_low,
                                         r.auc_unfrozen_high, r.auc_unfrozen_members)
        else:
            line += auc
        lines.append(line.rstrip())
    return lines


def _cells(row: ForecastRow | None) -> str:
    if row is None:
        return f"{'-':>5} {'-':>7} {'-':>7} {'-':>7}"
    return (f"{row.held_out:>5} {_num(row.mdape, '{:.1%}'):>7} "
            f"{f'{row.within_budget_right}/{row.judged}':>7} {row.not_yet or '-':>7}")


def _forecast_lines(report: Report) -> list[str]:
    rows: dict[str, dict[float, ForecastRow]] = {}
    for f in report.forecasts:
        rows.setdefault(f.method, {})[f.share] = f
    width = 38
    lines = [f"{'':<{width}}" + "".join(f" {f'at {s:.0%} of the budget':^29} " for s in SHARES),
             f"{'forecast of test_grok_epoch':<{width}}"
             + "".join(f" {'held':>5} {'MdAPE':>7} {'right':>7} {'not yet':>7} " for _ in SHARES)]
    for method, by_share in rows.items():
        first = by_share[min(by_share)]
        if first.missing == len(report.members):
            lines.append(f"{method:<{width}} not logged")
            continue
        note = f"  ({first.missing} member(s) lack the indicator)" if first.missing else ""
        lines.append((f"{method:<{width}}"
                      + "".join(f" {_cells(by_share.get(s))} " for s in SHARES)).rstrip() + note)
    lines += ["held: members forecast that generalised after that epoch (the MdAPE is over them);",
              "right: \"within the budget or not\" right / members judged; not yet: onset + lead",
              "forecasts made without an onset by then"]
    return [line.rstrip() for line in lines]


def table_text(report: Report) -> str:
    """The terminal table: one line per indicator, then the forecasts."""
    frozen = sum(m.frozen for m in report.members)
    grok = sorted(m.test_grok_epoch for m in report.members
                  if m.test_grok_epoch is not None and m.test_grok_epoch <= m.budget)
    rose = sum(m.rise_epoch is not None for m in report.members)
    spread = (f" (test grok epoch {grok[0]}–{grok[-1]}" + (f", {grok[-1] / grok[0]:.1f}× apart)"
                                                          if grok[0] > 0 else ")")) if grok else ""
    lines = [f"{len(report.members)} member(s), {frozen} frozen; rise = first epoch with test "
             f"acc ≥ {RISE_LEVEL}; early epoch = {SHARES[0]:.0%} of the budget"
             + ("" if frozen else " (so the AUC is over unfrozen members only)"),
             f"{rose} rose, {len(grok)} generalised within the budget{spread}",
             *_indicator_lines(report, frozen), "", *_forecast_lines(report)]
    return "\n".join(lines) + "\n"
