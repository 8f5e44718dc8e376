"""How each of the paper's claims is measured: numbers per claim, over seeds, and per seed
whether the claim held there (claim_wording.py writes the numbers out, claims.py gives the
verdict; claim_rules.py holds the rules they share: censoring, the test rise, medians). Here
the claims of the paper's Secs. 3.1, 3.2 and 3.4 (dropout, the embedding, neuron activity);
those of Sec. 3.3 (initialisation) are in claim_measures_init.py.

Each measure takes the members of the paper specs and returns a ``Measured``: named values
(one per seed, or per case) and one flag per seed. The thresholds it judges by are named
below, each under the sentence of the paper (``tracing-the-path-to-grokking``) it tests.
"""

from __future__ import annotations

import math

import numpy as np

from .. import grokking
from .claim_rules import (
    CENSORED,
    Measured,
    Members,
    column,
    final,
    grok_epoch,
    last_epoch,
    rise_window,
    seeds_median,
)

__all__ = ["mc_variance_peak", "drc_robust", "cosine_before_rise", "bimodal_embedding",
           "frozen_suppresses", "relu_bimodal_delayed", "inactive_falls_then_rises", "BIMODAL",
           "DAMPED"]

# --- the thresholds, each under the paper's sentence it tests -----------------------------------

# Fig. 1: "The test accuracy (left axis) and its variance (right axis) are initially negligible
# ... At the onset of generalization, the variance in the values of test accuracy variance
# increases rapidly": the peak is more than this many times the variance at the train grok epoch
MC_PEAK_OVER_MEMORISED = 5
# "once both the train and test accuracies attain their maximum values, the variance decreases
# to a near-zero value": the last MC evaluation is below this share of the peak
MC_FALLEN = 0.5
# Fig. 2: "once the model generalizes ... the test accuracy is largely unaffected for dropout
# rates below 0.2": acc(DRC_RATE) ≥ DRC_KEPT · acc(0) at the last DRC evaluation after grokking
DRC_RATE = 0.2
DRC_KEPT = 0.9
# Fig. 3: "codiagonals start to appear ... Once the test accuracy reaches a maximum, the heatmap
# becomes structured": the structure score ends at least this many times where it started
STRUCTURE_GROWTH = 3
# Fig. 4a: "the embedding distribution gradually evolves to two symmetric peaks centered around
# ± 0.4": a bimodality coefficient above 5/9 (a uniform distribution's), peaks within these
BIMODAL = 5 / 9
PEAK_RANGE = (0.25, 0.55)
# Sec. 3.2: "if the weights in the embedding layer are kept constant ... grokking is suppressed"
# (and Fig. 9's damped case): test accuracy stays below the rise level (0.5) throughout
DAMPED = grokking.RISE_LEVEL
# Fig. 11: "the number of inactive neurons falls rapidly. However, in further epochs the sparsity
# of the network increases": a fall, then a rise, of at least this many percentage points
INACTIVE_POINTS = 2


def mc_variance_peak(members: Members) -> Measured:
    """The MC-dropout variance peaks inside the test rise (onset ≤ peak epoch ≤ test grok),
    > ``MC_PEAK_OVER_MEMORISED``× its value at the train grok epoch (negligible while
    memorising), and has fallen below ``MC_FALLEN`` of the peak at the last MC evaluation (so
    the peak is a local maximum)."""
    out = Measured(values={"rows": [], "censored": 0,
                           "thresholds": [r.series.threshold for _, r in members["baseline"]]})
    for _, r in members["baseline"]:
        epochs, var = column(r, "mc_dropout_acc_var")
        if not var:
            continue
        window, train = rise_window(r), grok_epoch(r, "train_acc")
        if window is None or math.isinf(train):
            out.values["censored"] += 1
            out.flags.append(False)  # its grokking lies beyond the run: no peak during it
            continue
        start, grok = window
        peak = int(np.argmax(var))
        at_train = var[min(range(len(epochs)), key=lambda i: abs(epochs[i] - train))]
        where = (epochs[peak] - start) / max(grok - start, 1)
        out.values["rows"].append((epochs[peak], start, grok, where, at_train, var[peak],
                                   var[-1], epochs[-1]))
        out.flags.append(start <= epochs[peak] <= grok
                         and var[peak] > MC_PEAK_OVER_MEMORISED * at_train
                         and var[-1] < MC_FALLEN * var[peak])
    return out


def drc_robust(members: Members) -> Measured:
    """At the last DRC evaluation after the test grok epoch, acc(0.2) ≥ 0.9·acc(0)."""
    out = Measured(values={"ratios": [], "censored": 0, "early": 0})
    for _, r in members["baseline"]:
        at0, at2 = column(r, "drc_acc_r0"), column(r, f"drc_acc_r{DRC_RATE:g}")
        if not at0[1] or not at2[1]:
            continue
        test = grok_epoch(r, "test_acc")
        if math.isinf(test):
            out.values["censored"] += 1
            out.flags.append(False)  # never generalised in the run: no robustness once generalised
            continue
        late = [(a, b) for e, a, b in zip(at0[0], at0[1], at2[1], strict=True) if e >= test]
        if not late or late[-1][0] <= 0:
            out.values["early"] += 1  # every DRC evaluation came before grokking: not measured
            continue
        out.values["ratios"].append(late[-1][1] / late[-1][0])
        out.flags.append(out.values["ratios"][-1] >= DRC_KEPT)
    return out


def cosine_before_rise(members: Members) -> Measured:
    """Onset of the codiagonal structure score before the onset of the test rise (the same
    onset rule for both), and the score ends ≥ ``STRUCTURE_GROWTH``× where it started."""
    out = Measured(values={"rows": [], "censored": 0})
    for _, r in members["baseline"]:
        epochs, s = column(r, "embedding_cos_structure")
        if not s:
            continue
        window = rise_window(r)
        if window is None:
            out.values["censored"] += 1
            out.flags.append(False)  # no test rise in the run to precede
            continue
        at = grokking.onset(epochs, s)
        out.values["rows"].append((s[0], s[-1], CENSORED if at is None else at, window[0]))
        out.flags.append(at is not None and at < window[0] and s[-1] >= STRUCTURE_GROWTH * s[0])
    return out


def bimodal_embedding(members: Members) -> Measured:
    """Final bimodality coefficient > ``BIMODAL``, both peaks' magnitudes in ``PEAK_RANGE``."""
    group = members["baseline"]
    bc = [final(r, "embedding_bimodality") for _, r in group]
    low = [final(r, "embedding_peak_low") for _, r in group]
    high = [final(r, "embedding_peak_high") for _, r in group]
    lo_ok, hi_ok = PEAK_RANGE
    flags = [b is not None and lo is not None and hi is not None and b > BIMODAL
             and lo_ok <= -lo <= hi_ok and lo_ok <= hi <= hi_ok
             for b, lo, hi in zip(bc, low, high, strict=True)]
    return Measured(flags, {"bc": bc, "low": low, "high": high})


def frozen_suppresses(members: Members) -> Measured:
    """Grokking suppressed: the test accuracy stays below ``DAMPED`` over the whole budget.
    (The embedding's BC and cosine structure are not judged: a frozen layer cannot change.)"""
    rows = [(max(r.series.values("test_acc"), default=None), final(r, "test_acc"),
             last_epoch(r)) for _, r in members["frozen_embedding"]]
    return Measured([m is not None and m < DAMPED for m, _, _ in rows], {"rows": rows})


def relu_bimodal_delayed(members: Members) -> Measured:
    """Per seed: test grok epoch later than the baseline's median (a censored seed is later)
    and final BC > ``BIMODAL``."""
    base = [grok_epoch(r) for _, r in members["baseline"]]
    median = seeds_median(base)
    rows = [(grok_epoch(r), final(r, "embedding_bimodality"))
            for _, r in members["embedding_relu"]]
    return Measured([t > median and b is not None and b > BIMODAL for t, b in rows],
                    {"rows": rows, "base": base, "median": median})


def inactive_falls_then_rises(members: Members) -> Measured:
    """On the share of zero ReLU outputs (units × training inputs, in %): a fall of ≥
    ``INACTIVE_POINTS`` points to a minimum, then a rise of as many. Units dead on every
    input are reported beside it."""
    out = Measured(values={"rows": []})
    for _, r in members["baseline"]:
        epochs, frac = column(r, "zero_activation_frac")
        if not frac:
            continue
        pct = [100 * f for f in frac]
        low = int(np.argmin(pct))
        dead = r.series.values("inactive_neurons_pct")
        out.values["rows"].append((pct[0], pct[low], epochs[low], pct[-1],
                                   max(dead) if dead else None))
        out.flags.append(pct[0] - pct[low] >= INACTIVE_POINTS
                         and pct[-1] - pct[low] >= INACTIVE_POINTS)
    return out
