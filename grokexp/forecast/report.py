"""Every indicator over a population: lead time, how often it leads, early separation, forecast.

``analyse(trajectories)`` is the whole table; ``to_json`` and ``table_text`` are its two
faces (``--json`` and the terminal).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .history import Trajectory, indicator_series
from .onset import RISE, change_point, turning_point
from .predict import (
    EARLY_SHARE,
    calibrated_scale,
    extrapolate,
    level_at,
    mdape,
    scaled,
)
from .separation import bootstrap_auc, roc_auc

__all__ = ["aligned", "IndicatorRow", "ForecastRow", "MemberRow", "Report", "analyse", "table_text",
           "RISE", "FORECASTERS", "early_epoch", "known_early", "value_at"]

# The forecasts made (name → indicator extrapolated); "median" forecasts the others' median.
FORECASTERS = {"log ‖θ‖², measured rate": "log_weight_norm_sq",
               "embedding_cos_structure": "embedding_cos_structure",
               "embedding_fourier_share": "embedding_fourier_share"}
TURNING = ("test_loss",)  # these also get a row for their turning point (the peak)


@dataclass
class IndicatorRow:
    """One indicator's row of the table: how early it moves before the test rise, and how
    well its early value tells the members that generalise from those that do not."""

    name: str
    rule: str  # "50% change" or "peak"
    rising: int  # members whose test accuracy reached RISE
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
        return clean({"rise_level": RISE, "early_share": EARLY_SHARE,
                      "members": [asdict(m) for m in self.members],
                      "indicators": [asdict(r) for r in self.indicators],
                      "forecasts": [asdict(f) for f in self.forecasts]})


def early_epoch(traj: Trajectory) -> int:
    """The last evaluated epoch at or before EARLY_SHARE of the budget."""
    cut = EARLY_SHARE * traj.budget
    known = traj.epochs[traj.epochs <= cut]
    return int(known[-1]) if known.size else int(traj.epochs[0])


def value_at(epochs: np.ndarray, values: np.ndarray, epoch: int) -> float:
    """The last finite value at or before ``epoch`` (a member that stopped keeps its last)."""
    ok = np.flatnonzero((epochs <= epoch) & np.isfinite(values))
    return float(values[ok[-1]]) if ok.size else math.nan


def known_early(traj: Trajectory) -> bool:
    """Whether the member's value at its early epoch says something about its future: it had
    not generalised by then (else the value is a post-grok one) and was still evaluated at
    EARLY_SHARE of its budget (else the value is its last one, from before)."""
    g = traj.test_grok_epoch
    return (g is None or g > early_epoch(traj)) and traj.epochs[-1] >= EARLY_SHARE * traj.budget


def _indicator_row(name: str, rule: str, trajs: Sequence[Trajectory],
                   series: Sequence[dict[str, np.ndarray]]) -> IndicatorRow:
    leads, shares = [], []
    rising = with_onset = first = 0
    scores, labels = [], []
    for traj, ind in zip(trajs, series, strict=True):
        values = ind.get(name)
        if values is None:
            continue
        value = value_at(traj.epochs, values, early_epoch(traj))
        if known_early(traj) and math.isfinite(value):
            scores.append(value)
            labels.append(traj.generalised)
        rise = traj.rise(RISE)
        if rise is None:
            continue
        rising += 1
        onset = (turning_point if rule == "peak" else change_point)(traj.epochs, values)
        if onset is None:
            continue
        with_onset += 1
        lead = rise - onset
        leads.append(lead)
        first += lead > 0
        mem, grok = traj.train_grok_epoch, traj.test_grok_epoch
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


def _forecasts(trajs: Sequence[Trajectory], series: Sequence[dict[str, np.ndarray]]
               ) -> dict[str, list[float | None]]:
    """Leave-one-out: each member's forecast from the level and scale of all the others."""
    early = [early_epoch(t) for t in trajs]
    grok = [t.test_grok_epoch for t in trajs]
    out: dict[str, list[float | None]] = {}
    for method, name in FORECASTERS.items():
        if not any(name in s for s in series):
            continue  # not logged at all: analyse reports the row as missing
        levels = [level_at(t.epochs, s[name], g) if g is not None and name in s else math.nan
                  for t, s, g in zip(trajs, series, grok, strict=True)]
        result: list[float | None] = []
        for i, (traj, s) in enumerate(zip(trajs, series, strict=True)):
            others = [j for j in range(len(trajs)) if j != i and grok[j] is not None
                      and math.isfinite(levels[j])]
            if name not in s or not others:
                result.append(None)
                continue
            level = float(np.median([levels[j] for j in others]))
            raw_others = [extrapolate(trajs[j].epochs, series[j][name], early[j], level)
                          for j in others]
            scale = calibrated_scale(raw_others, [float(grok[j]) for j in others],  # type: ignore[arg-type]
                                     [float(early[j]) for j in others])
            raw = extrapolate(traj.epochs, s[name], early[i], level)
            result.append(scaled(raw, early[i], scale))
        out[method] = result
    out[DELAY_LAW] = _delay_law(trajs, series, early)
    others_median: list[float | None] = []
    for i in range(len(trajs)):
        known = [g for j, g in enumerate(grok) if j != i and g is not None]
        others_median.append(float(np.median(known)) if known else None)
    out["median of the others"] = others_median
    return out


DELAY_LAW = "delay law, c · lr · wd"


def _delay_law(trajs: Sequence[Trajectory], series: Sequence[dict[str, np.ndarray]],
               early: Sequence[int]) -> list[float | None]:
    """T_grok = T_mem + (log ‖θ_mem‖² − log ‖θ*‖²) / (c · lr · wd), leave-one-out.

    c is the median over the other members of (log ‖θ_mem‖² − log ‖θ_grok‖²) /
    ((T_grok − T_mem) · lr · wd), log ‖θ*‖² the median of their log ‖θ_grok‖². A member that
    has not memorised by its early epoch, or whose lr or weight decay is unknown, gets none;
    so does every member when the others' c is not positive (‖θ‖ grew during their delay: the
    law, which has it shrink, says nothing then).
    """
    # (T_mem, L_mem, T_grok, L_grok, lr · wd) per member, or None
    facts: list[tuple[int, float, int | None, float, float] | None] = []
    for traj, s in zip(trajs, series, strict=True):
        log_sq = s.get("log_weight_norm_sq")
        mem, grok = traj.train_grok_epoch, traj.test_grok_epoch
        if log_sq is None or mem is None or traj.lr is None or not traj.weight_decay:
            facts.append(None)
            continue
        l_mem = value_at(traj.epochs, log_sq, mem)
        l_grok = value_at(traj.epochs, log_sq, grok) if grok is not None else math.nan
        facts.append((mem, l_mem, grok, l_grok, traj.lr * traj.weight_decay))
    out: list[float | None] = []
    for i, fact in enumerate(facts):
        if fact is None or fact[0] > early[i]:
            out.append(None)
            continue
        rates, targets = [], []
        for j, other in enumerate(facts):
            if j == i or other is None:
                continue
            t_mem, l_mem, t_grok, l_grok, lr_wd = other
            if t_grok is not None and t_grok > t_mem and math.isfinite(l_grok):
                rates.append((l_mem - l_grok) / ((t_grok - t_mem) * lr_wd))
                targets.append(l_grok)
        if not rates:
            out.append(None)
            continue
        c, target = float(np.median(rates)), float(np.median(targets))
        if c <= 0:
            out.append(None)
            continue
        out.append(float(fact[0] + max(0.0, (fact[1] - target) / (c * fact[4]))))
    return out


def _forecast_row(method: str, values: Sequence[float | None], trajs: Sequence[Trajectory],
                  missing: int = 0) -> ForecastRow:
    held, measured = [], []
    right = judged = 0
    for f, t in zip(values, trajs, strict=True):
        g, e = t.test_grok_epoch, early_epoch(t)
        if f is None or (g is not None and g <= e):
            continue  # no forecast, or generalised before anything needed forecasting
        judged += 1
        right += (f <= t.budget) == t.generalised
        if g is not None:
            held.append(f)
            measured.append(float(g))
    return ForecastRow(method, len(held), mdape(held, measured), right, judged, missing)


def analyse(trajs: Sequence[Trajectory]) -> Report:
    """The whole table for a population of members."""
    series = [indicator_series(t) for t in trajs]
    names = sorted({n for s in series for n in s})
    rows = [_indicator_row(n, "50% change", trajs, series) for n in names]
    rows += [_indicator_row(n, "peak", trajs, series) for n in TURNING if n in names]
    forecasts = _forecasts(trajs, series)
    members = [MemberRow(t.label, t.run_id, t.train_grok_epoch, t.rise(RISE), t.test_grok_epoch,
                         t.budget, early_epoch(t), {m: f[i] for m, f in forecasts.items()})
               for i, t in enumerate(trajs)]
    missing = {m: sum(n not in s for s in series) for m, n in FORECASTERS.items()}
    rows_f = [_forecast_row(m, f, trajs, missing.get(m, 0)) for m, f in forecasts.items()]
    rows_f += [ForecastRow(m, 0, None, 0, 0, len(trajs)) for m in FORECASTERS
               if m not in forecasts]
    return Report(members, rows, rows_f)


def aligned(trajs: Sequence[Trajectory], names: Sequence[str]
            ) -> dict[str, list[tuple[str, np.ndarray, np.ndarray]]]:
    """Per indicator, each rising member's (label, epoch − rise epoch, series scaled to 0 at
    its first value and 1 at its last): the curves side by side at the rise."""
    out: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {n: [] for n in names}
    for traj in trajs:
        rise = traj.rise(RISE)
        if rise is None:
            continue
        series = indicator_series(traj)
        for name in names:
            v = series.get(name)
            ok = np.flatnonzero(np.isfinite(v)) if v is not None else np.array([], int)
            if v is None or ok.size < 2 or v[ok[-1]] == v[ok[0]]:
                continue
            scaled_v = (v[ok] - v[ok[0]]) / (v[ok[-1]] - v[ok[0]])
            out[name].append((traj.label, traj.epochs[ok] - rise, scaled_v))
    return out


def _num(x: float | None, fmt: str = "{:.0f}") -> str:
    if x is None:
        return "-"
    return "∞" if math.isinf(x) else fmt.format(x)


def table_text(report: Report) -> str:
    """The terminal table: one line per indicator, then the forecasts."""
    lines = [f"{len(report.members)} member(s); rise = first epoch with test acc ≥ {RISE}; "
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
