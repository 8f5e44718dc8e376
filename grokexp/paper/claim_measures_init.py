"""How the claims of the paper's Sec. 3.3 (initialisation) are measured: numbers per claim,
over seeds, and per seed whether the claim held there (see claim_measures.py; the thresholds
are named below, each under the sentence of the paper it tests).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..series import MemberSnapshots
from .claim_measures import BIMODAL, DAMPED
from .claim_rules import (
    Measured,
    Members,
    cases,
    column,
    final,
    grok_epoch,
    grokking_delay,
    last_epoch,
    seeds_median,
)

__all__ = ["scale_delay_linear", "scaled_widths_compress", "shifted_mean_returns",
           "shift_sweep_delays", "embedding_shift_sweep_delays", "layer_shift_delays",
           "constant_embedding_learns", "constant_rest_fails"]

# Fig. 5: "the delay between the increases in training and test accuracy varies nearly linearly
# with the scale factor": a line through (α, delay) with slope > 0 and at least this R²
LINEAR_R2 = 0.8
# Fig. 6b: "if the initialization distribution of the layers is initially broad, its width
# compresses for all layers at the onset of training": min std < this share of the initial
COMPRESSED = 0.8
# Figs. 7, 8: "the embedding distribution which requires additional epochs to attain a zero mean
# after which the training accuracy increases": |mean| below this at the train grok epoch
ZERO_MEAN = 0.1
# "excessively large shifts damp the rise in test accuracy": case 3's test accuracy stays below
# DAMPED (the rise level, 0.5) throughout, as a frozen embedding's does (claim_measures.py)
# Sec. 3.3: "setting the remaining weights to a constant value precludes learning": final train
# accuracy below this ("learning still occurs": the member's grok threshold)
PRECLUDED = 0.5


def scale_delay_linear(members: Members) -> Measured:
    """A line through (α, delay) of every member: slope > 0 and R² ≥ ``LINEAR_R2``; a censored
    member (delay beyond the budget) leaves no number to fit, so the claim is then not held."""
    points = [(float(v["init.scale"]), grokking_delay(r)) for v, r in members["scale_sweep"]]
    pairs = [(a, d) for a, d in points if not math.isinf(d)]
    censored = len(points) - len(pairs)
    out = Measured(values={"points": points, "fitted": len(pairs), "censored": censored})
    if len(pairs) < 3:
        out.flags = [False] if censored else []
        return out
    x, y = np.array(pairs).T
    slope, intercept = np.polyfit(x, y, 1)
    r2 = 1 - ((y - (slope * x + intercept)) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-9)
    out.values.update(slope=slope, r2=r2)
    out.flags = [bool(slope > 0 and r2 >= LINEAR_R2 and censored == 0)]
    return out


def scaled_widths_compress(members: Members) -> Measured:
    """At the largest α, every layer's std falls below ``COMPRESSED`` of its initial value."""
    top = max((float(v["init.scale"]) for v, _ in members["scale_sweep"]), default=None)
    out = Measured(values={"top": top, "ratios": []})
    for v, r in members["scale_sweep"]:
        if float(v["init.scale"]) != top:
            continue
        s = r.series
        layers = [n for n in s.columns if (n.endswith("_weight_std") or n == "embedding_std")
                  and s.values(n)[0] > 0]
        if not layers:
            continue
        worst = max(min(s.values(n)) / s.values(n)[0] for n in layers)
        out.values["ratios"].append(worst)
        out.flags.append(worst < COMPRESSED)
    return out


def shifted_mean_returns(members: Members) -> Measured:
    """|embedding mean| < ``ZERO_MEAN`` at the train grok epoch and final BC > ``BIMODAL``; a
    seed whose train accuracy never reaches the threshold fails."""
    out = Measured(values={"rows": []})
    for _, r in members["shifted"]:
        epochs, mean = column(r, "embedding_mean")
        if not mean:
            continue
        train = grok_epoch(r, "train_acc")
        at = mean[epochs.index(int(train))] if not math.isinf(train) and int(train) in epochs \
            else None
        bc = final(r, "embedding_bimodality")
        out.values["rows"].append((mean[0], at, bc))
        out.flags.append(at is not None and abs(at) < ZERO_MEAN and bc is not None
                         and bc > BIMODAL)
    return out


def _shift_sweep(group: Sequence[tuple[Mapping[str, Any], MemberSnapshots]], key: str
                 ) -> Measured:
    """Per seed: cases 1 and 2 have a delay shorter than case 0's median delay, and case 3's
    test accuracy stays below ``DAMPED`` within the budget."""
    found = cases(group, key)
    if found is None:
        return Measured(problem=f"the runs do not vary {key}: they are not this claim's spec "
                                "(rerun it)")
    found.sort(key=lambda c: float(c[0].get("low", 0.0)) if isinstance(c[0], Mapping) else 0.0)
    if len(found) != 4:
        return Measured(problem="needs the four cases")
    delays = [{s: grokking_delay(r) for s, r in seeds.items()} for _, seeds in found]
    # memorised (train ≥ threshold) and generalised (test ≥ threshold) per case and seed
    grokked = [([grok_epoch(r, "train_acc") for r in seeds.values()],
                [grok_epoch(r) for r in seeds.values()]) for _, seeds in found]
    peaks = [{s: max(r.series.values("test_acc"), default=0.0) for s, r in seeds.items()}
             for _, seeds in found]
    base = seeds_median(list(delays[0].values()))
    seeds = [s for s in found[1][1] if s in found[2][1] and s in found[3][1]]
    return Measured([delays[1][s] < base and delays[2][s] < base and peaks[3][s] < DAMPED
                     for s in seeds],
                    {"cases": [value for value, _ in found], "delays": delays, "peaks": peaks,
                     "base": base, "last_epochs": [last_epoch(r) for _, r in group],
                     "grokked": grokked,
                     "budgets": [r.series.budget for seeds in (c for _, c in found)
                                 for r in seeds.values()]})


def shift_sweep_delays(members: Members) -> Measured:
    """Fig. 9: every layer's weights and biases uniform in the case's interval."""
    return _shift_sweep(members["shift_sweep"], "init")


def embedding_shift_sweep_delays(members: Members) -> Measured:
    """Fig. 9's intervals on the embedding alone (the other layers Xavier normal)."""
    return _shift_sweep(members["embedding_shift_sweep"], "init.embedding")


def layer_shift_delays(members: Members) -> Measured:
    """Per seed: both shifted cases have a grokking delay longer than the default's median."""
    found = cases(members["layer_shift"], "init")
    if found is None:
        return Measured(problem="the runs do not vary init: they are not this claim's spec "
                                "(rerun it)")
    named: dict[str, dict[Any, MemberSnapshots]] = {}
    for value, seeds in found:
        which = "default" if not value else "embedding" if "embedding" in value else "other"
        named[which] = seeds
    if len(found) != 3 or len(named) != 3:
        return Measured(problem="needs the three cases")
    default, embedding, other = named["default"], named["embedding"], named["other"]
    base = seeds_median([grokking_delay(r) for r in default.values()])
    rows = [(name, [grok_epoch(r, "train_acc") for r in c.values()],
             [grok_epoch(r) for r in c.values()], [grokking_delay(r) for r in c.values()])
            for name, c in (("default", default), ("embedding shifted", embedding),
                            ("other layers shifted", other))]
    paired = [s for s in embedding if s in other]
    return Measured([grokking_delay(embedding[s]) > base and grokking_delay(other[s]) > base
                     for s in paired], {"rows": rows, "base": base})


def constant_embedding_learns(members: Members) -> Measured:
    """The final train accuracy reaches the member's grok threshold."""
    rows = [(final(r, "train_acc"), final(r, "test_acc"), r.series.threshold)
            for _, r in members["constant_embedding"]]
    return Measured([x[0] is not None and x[0] >= x[2] for x in rows], {"rows": rows})


def constant_rest_fails(members: Members) -> Measured:
    """The final train accuracy stays below ``PRECLUDED``."""
    rows = [final(r, "train_acc") for _, r in members["constant_rest"]]
    return Measured([x is not None and x < PRECLUDED for x in rows], {"rows": rows})
