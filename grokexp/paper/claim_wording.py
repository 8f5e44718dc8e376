"""What each claim's measure found, in words: the "measured" column of the claims table.

One function per measure (claim_measures.py, claim_measures_init.py): the measure's numbers
in, one line of text out, as ranges over seeds. Nothing here judges a claim.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .claim_rules import Measured

__all__ = ["span", "mc_variance_peak", "drc_robust", "cosine_before_rise", "bimodal_embedding",
           "scale_delay_linear", "scaled_widths_compress", "shifted_mean_returns",
           "shift_sweep_delays", "layer_shift_delays", "frozen_suppresses",
           "relu_bimodal_delayed", "constant_embedding_learns", "constant_rest_fails",
           "inactive_falls_then_rises"]


def span(values: Sequence[float | int | None], fmt: str = "{:.0f}") -> str:
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


def _levels(values: Sequence[float]) -> str:
    """The members' grok threshold: one value when they share it, else their range."""
    return str(values[0]) if len(set(values)) == 1 else span(values, "{:g}")


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return list(zip(*rows, strict=True))


def mc_variance_peak(m: Measured) -> str:
    v = m.values
    notes = [f"{v['censored']} censored (no test rise to place the peak in)"] * bool(
        v["censored"])
    if not v["rows"]:
        return "; ".join(notes)
    col = _columns(v["rows"])
    text = (f"variance peak at epoch {span(col[0])}; test rise from {span(col[1])} (its "
            f"onset) to {span(col[2])} (≥ {_levels(v['thresholds'])}); peak position in the "
            f"rise {span(col[3], '{:.2f}')} (0 = onset, 1 = threshold); var at train grok "
            f"{span(col[4], '{:.1e}')}, at peak {span(col[5], '{:.1e}')}, at the last "
            f"evaluation (epoch {span(col[7])}) {span(col[6], '{:.1e}')}")
    return "; ".join([text, *notes])


def drc_robust(m: Measured) -> str:
    v = m.values
    parts = [f"after grokking, acc(0.2)/acc(0) = {span(v['ratios'], '{:.2f}')}"] * bool(
        v["ratios"])
    parts += [f"{v['censored']} censored (never generalised)"] * bool(v["censored"])
    parts += [f"{v['early']} without a DRC after grokking"] * bool(v["early"])
    return "; ".join(parts)


def cosine_before_rise(m: Measured) -> str:
    v = m.values
    notes = [f"{v['censored']} censored (no test rise to precede)"] * bool(v["censored"])
    if not v["rows"]:
        return "; ".join(notes)
    col = _columns(v["rows"])
    text = (f"structure {span(col[0], '{:.2f}')} → {span(col[1], '{:.2f}')}; its onset at "
            f"epoch {span(col[2])}, the test rise's onset at {span(col[3])}")
    return "; ".join([text, *notes])


def bimodal_embedding(m: Measured) -> str:
    v = m.values
    return (f"final BC {span(v['bc'], '{:.2f}')} (>5/9 is bimodal); peaks "
            f"{span(v['low'], '{:+.2f}')} and {span(v['high'], '{:+.2f}')}")


def scale_delay_linear(m: Measured) -> str:
    v = m.values
    points = v["points"]
    by_alpha = {a: span([d for b, d in points if b == a]) for a in sorted({a for a, _ in points})}
    text = f"delay by α: {', '.join(f'{a:g}: {d}' for a, d in by_alpha.items())}"
    if "slope" not in v:
        return text + f"; {v['fitted']} members grokked, too few to fit"
    text += f"; fit slope {v['slope']:.0f} epochs/α, R² {v['r2']:.2f}"
    return text + (f" over the {v['fitted']} that grokked ({v['censored']} censored)"
                   if v["censored"] else "")


def scaled_widths_compress(m: Measured) -> str:
    v = m.values
    return f"α={v['top']:g}: min std / initial std, worst layer {span(v['ratios'], '{:.2f}')}"


def shifted_mean_returns(m: Measured) -> str:
    rows = m.values["rows"]
    return (f"embedding mean {span([x[0] for x in rows], '{:.2f}')} → "
            f"{span([x[1] for x in rows], '{:.3f}')} at train grok; final BC "
            f"{span([x[2] for x in rows], '{:.2f}')}")


def _case_label(value: Any) -> str:
    if isinstance(value, Mapping) and "low" in value and "high" in value:
        return f"[{value['low']:g}, {value['high']:g}]"
    return str(value)


def _generalised(test: Sequence[float]) -> str:
    """Test grok epochs of the members that generalised, and how many are censored."""
    done = [t for t in test if not math.isinf(t)]
    return (f"generalised at {span(done) if done else '-'} ({len(test) - len(done)} of "
            f"{len(test)} censored at the budget)")


def shift_sweep_delays(m: Measured) -> str:
    if m.problem:
        return m.problem
    v = m.values
    budget = span([b for b in v["budgets"] if b is not None])
    text = "; ".join(f"case {i} {_case_label(value)}: memorised at {span(train)}, "
                     f"{_generalised(test)}, delay {span(list(d.values()))}, max test "
                     f"{span(list(p.values()), '{:.2f}')}"
                     for i, (value, (train, test), d, p) in enumerate(zip(
                         v["cases"], v["grokked"], v["delays"], v["peaks"], strict=True)))
    return text + (f"; case 0 median delay {_one(v['base'])}; budget {budget} epochs, last "
                   f"evaluation at {span(v['last_epochs'])}")


def layer_shift_delays(m: Measured) -> str:
    if m.problem:
        return m.problem
    v = m.values
    text = "; ".join(f"{name}: train grok {span(train)}, test grok {span(test)}, delay "
                     f"{span(delay)}" for name, train, test, delay in v["rows"])
    return text + f"; default median delay {_one(v['base'])}"


def frozen_suppresses(m: Measured) -> str:
    rows = m.values["rows"]
    return (f"highest test acc {span([x[0] for x in rows], '{:.2f}')}, final "
            f"{span([x[1] for x in rows], '{:.2f}')}, within a budget of "
            f"{span([x[2] for x in rows])} epochs")


def relu_bimodal_delayed(m: Measured) -> str:
    v = m.values
    rows = v["rows"]
    return (f"test grok {span([x[0] for x in rows])} vs baseline {span(v['base'])} (median "
            f"{_one(v['median'])}); final BC {span([x[1] for x in rows], '{:.2f}')}")


def constant_embedding_learns(m: Measured) -> str:
    rows = m.values["rows"]
    return (f"final train acc {span([x[0] for x in rows], '{:.2f}')}, test "
            f"{span([x[1] for x in rows], '{:.2f}')}")


def constant_rest_fails(m: Measured) -> str:
    return f"final train acc {span(m.values['rows'], '{:.2f}')}"


def inactive_falls_then_rises(m: Measured) -> str:
    rows = m.values["rows"]
    return (f"zero activations {span([x[0] for x in rows], '{:.1f}')}% → min "
            f"{span([x[1] for x in rows], '{:.1f}')}% at epoch {span([x[2] for x in rows])} "
            f"→ end {span([x[3] for x in rows], '{:.1f}')}%; units dead on all inputs: max "
            f"{span([x[4] for x in rows], '{:.1f}')}%")

