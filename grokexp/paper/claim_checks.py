"""How each of the paper's claims is measured: one check per claim, over seeds.

A check takes the members of the paper specs (their varied values and RunRecords) and returns
what was measured, as a range over seeds, and one flag per seed saying whether the claim held
there. Thresholds are stated in the text; claims.py turns flags into verdicts.

The rules every check shares:

- **Censored seeds.** A seed whose test accuracy never reaches ``THRESHOLD`` within its budget
  is *censored*: its test grok epoch and its grokking delay lie beyond the budget, and
  ``grok_epoch``/``grokking_delay`` return ``CENSORED`` (infinity) for them, so a censored
  seed is later than every measured one in every comparison. It is never dropped: it counts
  as delayed where the claim is a delay (Figs. 9, 10, ReLU), as not shorter where the claim is
  a shorter delay (Fig. 9), and it cannot show a property of a grokking that happened after
  its run ended (Figs. 1, 2, 3: flag False). ``is_censored`` is what the table counts.
- **Onset of a rise** (``onset``): the first evaluated epoch from which a series stays above
  its floor + ``ONSET_FRACTION`` (10%) of its rise, where the floor is its minimum over the
  epochs considered and the rise is its last value minus that floor. Used for the test
  accuracy (considered up to its grok epoch) and for the codiagonal structure (Fig. 3).
- **The test rise** (``rise_window``): from the onset of the test accuracy (it "leaves its
  floor") to its grok epoch (it reaches ``THRESHOLD``); the floor is the minimum test
  accuracy up to the grok epoch and the rise is measured to the run's last test accuracy.
- **Against a baseline**, a seed is compared with the *median* of the baseline seeds
  (``seeds_median``: the upper median, always one seed's value, censored seeds included as
  beyond the budget), never with the best or worst seed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..engine.accuracy import first_epoch_at_or_above
from ..figures.sets import RISE_LEVEL, RunRecord

__all__ = [
    "Members",
    "THRESHOLD",
    "CENSORED",
    "ONSET_FRACTION",
    "grok_epoch",
    "grokking_delay",
    "is_censored",
    "budget",
    "seeds_median",
    "onset",
    "rise_window",
    "mc_variance_peak",
    "drc_robust",
    "cosine_before_rise",
    "bimodal_embedding",
    "scale_delay_linear",
    "scaled_widths_compress",
    "shifted_mean_returns",
    "shift_sweep_delays",
    "embedding_shift_sweep_delays",
    "layer_shift_delays",
    "frozen_suppresses",
    "relu_bimodal_delayed",
    "constant_embedding_learns",
    "constant_rest_fails",
    "inactive_falls_then_rises",
]

Members = Mapping[str, Sequence[tuple[Mapping[str, Any], RunRecord]]]
THRESHOLD = 0.95
CENSORED = math.inf  # the grok epoch / delay of a seed that did not get there in its budget
ONSET_FRACTION = 0.1


# --- shared rules -----------------------------------------------------------------------------

def grok_epoch(record: RunRecord, name: str = "test_acc") -> float:
    """First evaluated epoch the series reaches ``THRESHOLD``; ``CENSORED`` if it never does."""
    epoch = first_epoch_at_or_above(record.epochs(name), record.values(name), THRESHOLD)
    return CENSORED if epoch is None else float(epoch)


def grokking_delay(record: RunRecord) -> float:
    """Test grok epoch − train grok epoch; ``CENSORED`` when either never reached the threshold."""
    train, test = grok_epoch(record, "train_acc"), grok_epoch(record, "test_acc")
    return CENSORED if math.isinf(train) or math.isinf(test) else test - train


def is_censored(record: RunRecord) -> bool:
    """The seed's test accuracy never reached ``THRESHOLD`` within its budget."""
    return math.isinf(grok_epoch(record, "test_acc"))


def budget(record: RunRecord) -> int | None:
    """The last evaluated epoch: a censored seed trained to its budget, so this is the budget."""
    epochs = record.epochs("test_acc")
    return epochs[-1] if epochs else None


def seeds_median(values: Sequence[float]) -> float:
    """The upper median over seeds (censored ones as ``CENSORED``): always one seed's value."""
    return statistics.median_high(values) if values else CENSORED


def onset(epochs: Sequence[int], values: Sequence[float], end: float | None = None
          ) -> int | None:
    """First epoch (≤ ``end``) from which the series stays above floor + 10% of its rise.

    The floor is the minimum over the epochs considered (those ≤ ``end``), the rise is the
    series' last value (over all epochs) minus the floor. None when it does not rise.
    """
    if not values:
        return None
    kept = [(e, v) for e, v in zip(epochs, values, strict=True) if end is None or e <= end]
    if not kept:
        return None
    floor = min(v for _, v in kept)
    rise = values[-1] - floor
    if rise <= 0:
        return None
    level = floor + ONSET_FRACTION * rise
    start = None
    for e, v in kept:
        if v > level:
            start = e if start is None else start
        else:
            start = None
    return start


def rise_window(record: RunRecord) -> tuple[int, int] | None:
    """(onset, grok epoch) of the test accuracy; None for a censored seed."""
    grok = grok_epoch(record, "test_acc")
    if math.isinf(grok):
        return None
    start = onset(record.epochs("test_acc"), record.values("test_acc"), grok)
    return None if start is None else (start, int(grok))


def _span(values: Sequence[float | int | None], fmt: str = "{:.0f}") -> str:
    """Range over seeds; censored (infinite) values and missing ones are counted apart."""
    shown = [v for v in values if v is not None and not math.isinf(v)]
    censored = sum(v is not None and math.isinf(v) for v in values)
    missing = sum(v is None for v in values)
    notes = ([f"{censored} censored"] if censored else []) + \
        ([f"{missing} missing"] if missing else [])
    if not shown:
        return ", ".join(notes) or "none"
    lo, hi = min(shown), max(shown)
    text = fmt.format(lo) if lo == hi else f"{fmt.format(lo)}–{fmt.format(hi)}"
    return text + (f" ({', '.join(notes)})" if notes else "")


def _one(value: float, fmt: str = "{:.0f}") -> str:
    return "censored" if math.isinf(value) else fmt.format(value)


def _final(record: RunRecord, name: str) -> float | None:
    values = record.values(name)
    return values[-1] if values else None


def _seed(varied: Mapping[str, Any], position: int) -> Any:
    return varied.get("train.seed", position)


def _cases(group: Iterable[tuple[Mapping[str, Any], RunRecord]], key: str
           ) -> list[tuple[Any, dict[Any, RunRecord]]] | None:
    """Members grouped by the value of ``key`` (first-seen order), each case by seed.

    None when a member does not vary ``key`` (the runs come from another spec).
    """
    cases: dict[str, tuple[Any, dict[Any, RunRecord]]] = {}
    for varied, record in group:
        if key not in varied:
            return None
        value = varied[key]
        case = cases.setdefault(repr(value), (value, {}))
        case[1][_seed(varied, len(case[1]))] = record
    return list(cases.values())


# --- the checks -------------------------------------------------------------------------------

def mc_variance_peak(members: Members) -> tuple[str, list[bool]]:
    """The MC-dropout variance peaks inside the test rise (onset ≤ peak epoch ≤ test grok),
    > 5× its value at the train grok epoch (negligible while memorising), and has fallen below
    half the peak at the last MC evaluation (so the peak is a local maximum)."""
    rows, flags, censored = [], [], 0
    for _, r in members["baseline"]:
        epochs, var = r.series.get("mc_dropout_acc_var", ([], []))
        if not var:
            continue
        window, train = rise_window(r), grok_epoch(r, "train_acc")
        if window is None or math.isinf(train):
            censored += 1
            flags.append(False)  # its grokking lies beyond the run: no peak during it
            continue
        start, grok = window
        peak = int(np.argmax(var))
        at_train = var[min(range(len(epochs)), key=lambda i: abs(epochs[i] - train))]
        where = (epochs[peak] - start) / max(grok - start, 1)
        rows.append((epochs[peak], start, grok, where, at_train, var[peak], var[-1], epochs[-1]))
        flags.append(start <= epochs[peak] <= grok and var[peak] > 5 * at_train
                     and var[-1] < 0.5 * var[peak])
    notes = [f"{censored} censored (no test rise to place the peak in)"] * bool(censored)
    if not rows:
        return "; ".join(notes), flags
    col = list(zip(*rows, strict=True))
    text = (f"variance peak at epoch {_span(col[0])}; test rise from {_span(col[1])} (leaves "
            f"its floor) to {_span(col[2])} (≥ {THRESHOLD}); peak position in the rise "
            f"{_span(col[3], '{:.2f}')} (0 = onset, 1 = threshold); var at train grok "
            f"{_span(col[4], '{:.1e}')}, at peak {_span(col[5], '{:.1e}')}, at the last "
            f"evaluation (epoch {_span(col[7])}) {_span(col[6], '{:.1e}')}")
    return "; ".join([text, *notes]), flags


def drc_robust(members: Members) -> tuple[str, list[bool]]:
    """At the last DRC evaluation after the test grok epoch, acc(0.2) ≥ 0.9·acc(0)."""
    ratios, flags, censored, early = [], [], 0, 0
    for _, r in members["baseline"]:
        at0, at2 = r.series.get("drc_acc_r0"), r.series.get("drc_acc_r0.2")
        if not at0 or not at2:
            continue
        test = grok_epoch(r, "test_acc")
        if math.isinf(test):
            censored += 1
            flags.append(False)  # never generalised in the run: no robustness once generalised
            continue
        late = [(a, b) for e, a, b in zip(at0[0], at0[1], at2[1], strict=True) if e >= test]
        if not late or late[-1][0] <= 0:
            early += 1  # every DRC evaluation came before grokking: not measured there
            continue
        ratios.append(late[-1][1] / late[-1][0])
        flags.append(ratios[-1] >= 0.9)
    parts = [f"after grokking, acc(0.2)/acc(0) = {_span(ratios, '{:.2f}')}"] * bool(ratios)
    parts += [f"{censored} censored (never generalised)"] * bool(censored)
    parts += [f"{early} without a DRC after grokking"] * bool(early)
    return "; ".join(parts), flags


def cosine_before_rise(members: Members) -> tuple[str, list[bool]]:
    """Onset of the codiagonal structure score before the onset of the test rise (the same
    onset rule for both), and the score ends ≥ 3× where it started."""
    rows, flags, censored = [], [], 0
    for _, r in members["baseline"]:
        epochs, s = r.series.get("embedding_cos_structure", ([], []))
        if not s:
            continue
        window = rise_window(r)
        if window is None:
            censored += 1
            flags.append(False)  # no test rise in the run to precede
            continue
        at = onset(epochs, s)
        rows.append((s[0], s[-1], CENSORED if at is None else at, window[0]))
        flags.append(at is not None and at < window[0] and s[-1] >= 3 * s[0])
    notes = [f"{censored} censored (no test rise to precede)"] * bool(censored)
    if not rows:
        return "; ".join(notes), flags
    col = list(zip(*rows, strict=True))
    text = (f"structure {_span(col[0], '{:.2f}')} → {_span(col[1], '{:.2f}')}; its onset at "
            f"epoch {_span(col[2])}, the test rise's onset at {_span(col[3])}")
    return "; ".join([text, *notes]), flags


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
    """A line through (α, delay) of every member: slope > 0 and R² ≥ 0.8; a censored member
    (delay beyond the budget) leaves no number to fit, so the claim is then not held."""
    points = [(float(v["init.scale"]), grokking_delay(r)) for v, r in members["scale_sweep"]]
    pairs = [(a, d) for a, d in points if not math.isinf(d)]
    censored = len(points) - len(pairs)
    by_alpha = {a: _span([d for b, d in points if b == a]) for a in sorted({a for a, _ in points})}
    text = f"delay by α: {', '.join(f'{a:g}: {d}' for a, d in by_alpha.items())}"
    if len(pairs) < 3:
        return text + f"; {len(pairs)} members grokked, too few to fit", [False] if censored else []
    x, y = np.array(pairs).T
    slope, intercept = np.polyfit(x, y, 1)
    r2 = 1 - ((y - (slope * x + intercept)) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-9)
    text += f"; fit slope {slope:.0f} epochs/α, R² {r2:.2f}"
    text += f" over the {len(pairs)} that grokked ({censored} censored)" if censored else ""
    return text, [bool(slope > 0 and r2 >= 0.8 and censored == 0)]


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
    """|embedding mean| < 0.1 at the train grok epoch and final BC > 5/9; a seed whose train
    accuracy never reaches the threshold fails."""
    rows, flags = [], []
    for _, r in members["shifted"]:
        epochs, mean = r.series.get("embedding_mean", ([], []))
        if not mean:
            continue
        train = grok_epoch(r, "train_acc")
        at = mean[epochs.index(int(train))] if not math.isinf(train) and int(train) in epochs \
            else None
        bc = _final(r, "embedding_bimodality")
        rows.append((mean[0], at, bc))
        flags.append(at is not None and abs(at) < 0.1 and bc is not None and bc > 5 / 9)
    return (f"embedding mean {_span([x[0] for x in rows], '{:.2f}')} → "
            f"{_span([x[1] for x in rows], '{:.3f}')} at train grok; final BC "
            f"{_span([x[2] for x in rows], '{:.2f}')}"), flags


def _case_label(value: Any) -> str:
    if isinstance(value, Mapping) and "low" in value and "high" in value:
        return f"[{value['low']:g}, {value['high']:g}]"
    return str(value)


def _shift_sweep(group: Sequence[tuple[Mapping[str, Any], RunRecord]], key: str
                 ) -> tuple[str, list[bool]]:
    """Per seed: cases 1 and 2 have a delay shorter than case 0's median delay, and case 3's
    test accuracy stays below ``RISE_LEVEL`` (damped) within the budget."""
    cases = _cases(group, key)
    if cases is None:
        return (f"the runs do not vary {key}: they are not this claim's spec (rerun it)", [])
    cases.sort(key=lambda c: float(c[0].get("low", 0.0)) if isinstance(c[0], Mapping) else 0.0)
    if len(cases) != 4:
        return "needs the four cases", []
    delays = [{s: grokking_delay(r) for s, r in seeds.items()} for _, seeds in cases]
    peaks = [{s: max(r.values("test_acc"), default=0.0) for s, r in seeds.items()}
             for _, seeds in cases]
    base = seeds_median(list(delays[0].values()))
    text = "; ".join(f"case {i} {_case_label(value)}: delay {_span(list(d.values()))}, max test "
                     f"{_span(list(p.values()), '{:.2f}')}"
                     for i, ((value, _), d, p) in enumerate(zip(cases, delays, peaks,
                                                                strict=True)))
    text += (f"; case 0 median delay {_one(base)}; budget "
             f"{_span([budget(r) for _, r in group])} epochs")
    seeds = [s for s in cases[1][1] if s in cases[2][1] and s in cases[3][1]]
    return text, [delays[1][s] < base and delays[2][s] < base and peaks[3][s] < RISE_LEVEL
                  for s in seeds]


def shift_sweep_delays(members: Members) -> tuple[str, list[bool]]:
    """Fig. 9: every layer's weights and biases uniform in the case's interval."""
    return _shift_sweep(members["shift_sweep"], "init")


def embedding_shift_sweep_delays(members: Members) -> tuple[str, list[bool]]:
    """Fig. 9's intervals on the embedding alone (the other layers Xavier normal)."""
    return _shift_sweep(members["embedding_shift_sweep"], "init.embedding")


def layer_shift_delays(members: Members) -> tuple[str, list[bool]]:
    """Per seed: both shifted cases have a grokking delay longer than the default's median."""
    cases = _cases(members["layer_shift"], "init")
    if cases is None:
        return "the runs do not vary init: they are not this claim's spec (rerun it)", []
    named: dict[str, dict[Any, RunRecord]] = {}
    for value, seeds in cases:
        which = "default" if not value else "embedding" if "embedding" in value else "other"
        named[which] = seeds
    if len(cases) != 3 or len(named) != 3:
        return "needs the three cases", []
    default, embedding, other = named["default"], named["embedding"], named["other"]
    base = seeds_median([grokking_delay(r) for r in default.values()])
    text = "; ".join(
        f"{n}: train grok {_span([grok_epoch(r, 'train_acc') for r in c.values()])}, test "
        f"grok {_span([grok_epoch(r) for r in c.values()])}, delay "
        f"{_span([grokking_delay(r) for r in c.values()])}"
        for n, c in (("default", default), ("embedding shifted", embedding),
                     ("other layers shifted", other)))
    text += f"; default median delay {_one(base)}"
    paired = [s for s in embedding if s in other]
    return text, [grokking_delay(embedding[s]) > base and grokking_delay(other[s]) > base
                  for s in paired]


def frozen_suppresses(members: Members) -> tuple[str, list[bool]]:
    """Grokking suppressed: the test accuracy stays below ``RISE_LEVEL`` over the whole budget.
    (The embedding's BC and cosine structure are not judged: a frozen layer cannot change.)"""
    rows = [(max(r.values("test_acc"), default=None), _final(r, "test_acc"), budget(r))
            for _, r in members["frozen_embedding"]]
    flags = [m is not None and m < RISE_LEVEL for m, _, _ in rows]
    return (f"highest test acc {_span([x[0] for x in rows], '{:.2f}')}, final "
            f"{_span([x[1] for x in rows], '{:.2f}')}, within a budget of "
            f"{_span([x[2] for x in rows])} epochs"), flags


def relu_bimodal_delayed(members: Members) -> tuple[str, list[bool]]:
    """Per seed: test grok epoch later than the baseline's median (a censored seed is later)
    and final BC > 5/9."""
    base = [grok_epoch(r) for _, r in members["baseline"]]
    median = seeds_median(base)
    rows = [(grok_epoch(r), _final(r, "embedding_bimodality"))
            for _, r in members["embedding_relu"]]
    flags = [t > median and b is not None and b > 5 / 9 for t, b in rows]
    return (f"test grok {_span([x[0] for x in rows])} vs baseline {_span(base)} (median "
            f"{_one(median)}); final BC {_span([x[1] for x in rows], '{:.2f}')}"), flags


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
