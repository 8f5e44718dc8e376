"""How each of the paper's claims is measured: one check per claim, over seeds.

A check takes the members of the paper specs (their varied values and RunRecords) and returns
what was measured, as a range over seeds, and one flag per seed (or per sweep) saying whether
the claim held there. Thresholds are stated in the text; claims.py turns flags into verdicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .figure_sets import RunRecord, rise_epoch
from .metrics.accuracy import first_epoch_at_or_above

__all__ = [
    "Members",
    "THRESHOLD",
    "mc_variance_peak",
    "drc_robust",
    "cosine_before_rise",
    "bimodal_embedding",
    "scale_delay_linear",
    "scaled_widths_compress",
    "shifted_mean_returns",
    "shift_sweep_delays",
    "layer_shift_delays",
    "frozen_suppresses",
    "relu_bimodal_delayed",
    "constant_embedding_learns",
    "constant_rest_fails",
    "inactive_falls_then_rises",
]

Members = Mapping[str, Sequence[tuple[Mapping[str, Any], RunRecord]]]
THRESHOLD = 0.95


def _grok(record: RunRecord, name: str) -> int | None:
    return first_epoch_at_or_above(record.epochs(name), record.values(name), THRESHOLD)


def _span(values: Sequence[float | int | None], fmt: str = "{:.0f}") -> str:
    shown = [v for v in values if v is not None]
    missing = len(values) - len(shown)
    if not shown:
        return "never"
    lo, hi = min(shown), max(shown)
    text = fmt.format(lo) if lo == hi else f"{fmt.format(lo)}–{fmt.format(hi)}"
    return text + (f" ({missing} never)" if missing else "")



def _final(record: RunRecord, name: str) -> float | None:
    values = record.values(name)
    return values[-1] if values else None


def mc_variance_peak(members: Members) -> tuple[str, list[bool]]:
    """Peak after memorisation, > 5× the variance at the train grok epoch, and at the last
    MC evaluation fallen below half the peak."""
    peaks, flags = [], []
    for _, r in members["baseline"]:
        epochs, var = r.series.get("mc_dropout_acc_var", ([], []))
        train, test = _grok(r, "train_acc"), _grok(r, "test_acc")
        if not var or train is None or test is None:
            continue
        peak = int(np.argmax(var))
        at_train = var[min(range(len(epochs)), key=lambda i: abs(epochs[i] - train))]
        peaks.append((epochs[peak], train, test, var[peak], at_train, var[-1], epochs[-1]))
        flags.append(epochs[peak] >= train and var[peak] > 5 * at_train
                     and var[-1] < 0.5 * var[peak])
    text = (f"peak epoch {_span([p[0] for p in peaks])} (train grok {_span([p[1] for p in peaks])},"
            f" test grok {_span([p[2] for p in peaks])}); var at train grok "
            f"{_span([p[4] for p in peaks], '{:.1e}')}, at peak "
            f"{_span([p[3] for p in peaks], '{:.1e}')}, at the last evaluation (epoch "
            f"{_span([p[6] for p in peaks])}) {_span([p[5] for p in peaks], '{:.1e}')}")
    return text, flags


def drc_robust(members: Members) -> tuple[str, list[bool]]:
    ratios, flags = [], []
    for _, r in members["baseline"]:
        test = _grok(r, "test_acc")
        at0, at2 = r.series.get("drc_acc_r0"), r.series.get("drc_acc_r0.2")
        if test is None or not at0 or not at2:
            continue
        late = [(a, b) for e, a, b in zip(at0[0], at0[1], at2[1], strict=True) if e >= test]
        if late and late[-1][0] > 0:
            ratios.append(late[-1][1] / late[-1][0])
            flags.append(ratios[-1] >= 0.9)
    return f"after grokking, acc(0.2)/acc(0) = {_span(ratios, '{:.2f}')}", flags


def cosine_before_rise(members: Members) -> tuple[str, list[bool]]:
    rows, flags = [], []
    for _, r in members["baseline"]:
        epochs, s = r.series.get("embedding_cos_structure", ([], []))
        rise = rise_epoch(r)
        if not s or rise is None:
            continue
        half = s[0] + 0.5 * (s[-1] - s[0])
        at = next(e for e, v in zip(epochs, s, strict=True) if v >= half)
        rows.append((s[0], s[-1], at, rise))
        flags.append(at <= rise and s[-1] >= 3 * s[0])
    text = (f"structure {_span([x[0] for x in rows], '{:.2f}')} → "
            f"{_span([x[1] for x in rows], '{:.2f}')}; half-way at epoch "
            f"{_span([x[2] for x in rows])}, test rise (≥0.5) at {_span([x[3] for x in rows])}")
    return text, flags


def bimodal_embedding(members: Members) -> tuple[str, list[bool]]:
    bc = [_final(r, "embedding_bimodality") for _, r in members["baseline"]]
    low = [_final(r, "embedding_peak_low") for _, r in members["baseline"]]
    high = [_final(r, "embedding_peak_high") for _, r in members["baseline"]]
    flags = [b is not None and lo is not None and hi is not None and b > 5 / 9
             and 0.25 <= -lo <= 0.55 and 0.25 <= hi <= 0.55
             for b, lo, hi in zip(bc, low, high, strict=True)]
    return (f"final BC {_span(bc, '{:.2f}')} (>5/9 is bimodal); peaks {_span(low, '{:+.2f}')}"
            f" and {_span(high, '{:+.2f}')}"), flags


def scale_delay_linear(members: Members) -> tuple[str, list[bool]]:
    points = [(float(v["init.scale"]), r) for v, r in members["scale_sweep"]]
    pairs, missing = [], 0
    for alpha, r in points:
        train, test = _grok(r, "train_acc"), _grok(r, "test_acc")
        if train is None or test is None:
            missing += 1
        else:
            pairs.append((alpha, test - train))
    if len(pairs) < 3:
        return f"{len(pairs)} members grokked ({missing} did not)", []
    x, y = np.array(pairs).T
    slope, intercept = np.polyfit(x, y, 1)
    r2 = 1 - ((y - (slope * x + intercept)) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-9)
    by_alpha = {a: _span([d for b, d in pairs if b == a]) for a in sorted(set(x))}
    text = (f"delay by α: {', '.join(f'{a:g}: {d}' for a, d in by_alpha.items())}; fit slope "
            f"{slope:.0f} epochs/α, R² {r2:.2f}")
    text += f"; {missing} never grokked" if missing else ""
    return text, [bool(slope > 0 and r2 >= 0.8 and missing == 0)]


def scaled_widths_compress(members: Members) -> tuple[str, list[bool]]:
    top = max((float(v["init.scale"]) for v, _ in members["scale_sweep"]), default=None)
    ratios, flags = [], []
    for v, r in members["scale_sweep"]:
        if float(v["init.scale"]) != top:
            continue
        layers = [n for n in r.series if (n.endswith("_weight_std") or n == "embedding_std")
                  and r.values(n)[0] > 0]
        if not layers:
            continue
        worst = max(min(r.values(n)) / r.values(n)[0] for n in layers)
        ratios.append(worst)
        flags.append(worst < 0.8)
    return f"α={top:g}: min std / initial std, worst layer {_span(ratios, '{:.2f}')}", flags


def shifted_mean_returns(members: Members) -> tuple[str, list[bool]]:
    rows, flags = [], []
    for _, r in members["shifted"]:
        epochs, mean = r.series.get("embedding_mean", ([], []))
        train = _grok(r, "train_acc")
        if not mean or train is None:
            continue
        at = mean[epochs.index(train)] if train in epochs else None
        bc = _final(r, "embedding_bimodality")
        rows.append((mean[0], at, bc))
        flags.append(at is not None and abs(at) < 0.1 and bc is not None and bc > 5 / 9)
    return (f"embedding mean {_span([x[0] for x in rows], '{:.2f}')} → "
            f"{_span([x[1] for x in rows], '{:.3f}')} at train grok; final BC "
            f"{_span([x[2] for x in rows], '{:.2f}')}"), flags


def _by_group(group: Sequence[tuple[Mapping[str, Any], RunRecord]], key: str
              ) -> dict[str, list[RunRecord]]:
    out: dict[str, list[RunRecord]] = {}
    for v, r in group:
        out.setdefault(str(v.get(key)), []).append(r)
    return out


def shift_sweep_delays(members: Members) -> tuple[str, list[bool]]:
    groups = list(_by_group(members["shift_sweep"], "init.embedding").values())
    if len(groups) != 4:
        return "needs the four cases", []
    delays = [[(lambda t, s: None if t is None or s is None else s - t)(
        _grok(r, "train_acc"), _grok(r, "test_acc")) for r in g] for g in groups]
    final = [[_final(r, "test_acc") or 0.0 for r in g] for g in groups]
    text = "; ".join(f"case {i}: delay {_span(d)}, final test {_span(f, '{:.2f}')}"
                     for i, (d, f) in enumerate(zip(delays, final, strict=True)))
    base = max((d for d in delays[0] if d is not None), default=None)
    if base is None:
        return text + " (case 0 never grokked: no delay to compare)", []
    shorter = all(d is not None and d < base for d in delays[1] + delays[2])
    damped = max(final[3]) < min(min(f) for f in final[:3]) - 0.1
    return text, [shorter and damped]


def layer_shift_delays(members: Members) -> tuple[str, list[bool]]:
    groups = list(_by_group(members["layer_shift"], "init").values())
    if len(groups) != 3:
        return "needs the three cases", []
    tests = [[_grok(r, "test_acc") for r in g] for g in groups]
    names = ("default", "embedding shifted", "other layers shifted")
    text = "; ".join(f"{n}: test grok {_span(t)}" for n, t in zip(names, tests, strict=True))
    base = max((t for t in tests[0] if t is not None), default=None)
    if base is None:
        return text + " (the default never grokked: nothing to compare)", []
    return text, [all(t is None or t > base for t in tests[1] + tests[2])]


def frozen_suppresses(members: Members) -> tuple[str, list[bool]]:
    rows = [(_final(r, "test_acc"), _final(r, "embedding_bimodality"),
             _final(r, "embedding_cos_structure")) for _, r in members["frozen_embedding"]]
    flags = [t is not None and t < THRESHOLD and b is not None and b < 0.45
             and c is not None and c < 0.3 for t, b, c in rows]
    return (f"final test acc {_span([x[0] for x in rows], '{:.2f}')}; BC "
            f"{_span([x[1] for x in rows], '{:.2f}')}; cos structure "
            f"{_span([x[2] for x in rows], '{:.2f}')}"), flags


def relu_bimodal_delayed(members: Members) -> tuple[str, list[bool]]:
    base = [_grok(r, "test_acc") for _, r in members["baseline"]]
    latest = max((b for b in base if b is not None), default=None)
    rows = [(_grok(r, "test_acc"), _final(r, "embedding_bimodality"))
            for _, r in members["embedding_relu"]]
    flags = [latest is not None and t is not None and t > latest and b is not None and b > 5 / 9
             for t, b in rows]
    if latest is None:
        flags = []  # the baseline never grokked: no delay to compare
    return (f"test grok {_span([x[0] for x in rows])} vs baseline {_span(base)}; final BC "
            f"{_span([x[1] for x in rows], '{:.2f}')}"), flags


def constant_embedding_learns(members: Members) -> tuple[str, list[bool]]:
    rows = [(_final(r, "train_acc"), _final(r, "test_acc"))
            for _, r in members["constant_embedding"]]
    return (f"final train acc {_span([x[0] for x in rows], '{:.2f}')}, test "
            f"{_span([x[1] for x in rows], '{:.2f}')}"), [
        x[0] is not None and x[0] >= THRESHOLD for x in rows]


def constant_rest_fails(members: Members) -> tuple[str, list[bool]]:
    rows = [_final(r, "train_acc") for _, r in members["constant_rest"]]
    return f"final train acc {_span(rows, '{:.2f}')}", [x is not None and x < 0.5 for x in rows]


def inactive_falls_then_rises(members: Members) -> tuple[str, list[bool]]:
    """On the share of zero ReLU outputs (units × training inputs, in %): a fall of ≥ 2
    points to a minimum, then a rise of ≥ 2 points. Units dead on every input are reported
    beside it."""
    rows, flags = [], []
    for _, r in members["baseline"]:
        epochs, frac = r.series.get("zero_activation_frac", ([], []))
        if not frac:
            continue
        pct = [100 * f for f in frac]
        low = int(np.argmin(pct))
        dead = r.values("inactive_neurons_pct")
        rows.append((pct[0], pct[low], epochs[low], pct[-1], max(dead) if dead else None))
        flags.append(pct[0] - pct[low] >= 2 and pct[-1] - pct[low] >= 2)
    return (f"zero activations {_span([x[0] for x in rows], '{:.1f}')}% → min "
            f"{_span([x[1] for x in rows], '{:.1f}')}% at epoch {_span([x[2] for x in rows])} "
            f"→ end {_span([x[3] for x in rows], '{:.1f}')}%; units dead on all inputs: max "
            f"{_span([x[4] for x in rows], '{:.1f}')}%"), flags
