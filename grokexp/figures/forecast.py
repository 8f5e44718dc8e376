"""Figures of ``grokexp forecast``: data in, a Figure out (the CLI logs them)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..grokking import RISE_LEVEL  # noqa: E402

__all__ = ["aligned_curves", "lead_chart", "forecast_scatter"]


def aligned_curves(curves: Mapping[str, Sequence[tuple[str, np.ndarray, np.ndarray]]],
                   title: str = "") -> Figure:
    """One panel per indicator: each member's curve (0 = its first value, 1 = its last)
    against epochs since its test rise (x = 0: test accuracy reaches ``RISE_LEVEL``)."""
    names = [n for n, c in curves.items() if c]
    cols = min(3, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / cols))
    fig = Figure(figsize=(4.2 * cols, 2.8 * rows), constrained_layout=True)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, name in zip(axes, names, strict=False):
        for _, x, y in curves[name]:
            ax.plot(x, y, linewidth=0.8, alpha=0.7)
        ax.axvline(0, color="black", linestyle=":", linewidth=1)
        ax.set(title=name, xlabel=f"epochs since test acc ≥ {RISE_LEVEL:g}",
               ylabel="share of change")
    for ax in axes[len(names):]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig


def lead_chart(leads: Mapping[str, Sequence[float]], title: str = "") -> Figure:
    """Each indicator's lead before the test rise, one dot per member (right: it warns)."""
    names = sorted((n for n, v in leads.items() if len(v)),
                   key=lambda n: float(np.median(leads[n])))
    fig = Figure(figsize=(7, 0.35 * max(4, len(names)) + 1), constrained_layout=True)
    ax = fig.subplots()
    for i, name in enumerate(names):
        values = np.asarray(leads[name], dtype=float)
        ax.scatter(values, np.full(values.shape, i), s=12, alpha=0.7)
        ax.plot([np.median(values)] * 2, [i - 0.3, i + 0.3], color="black", linewidth=1.5)
    ax.axvline(0, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set(xlabel=f"lead before test acc ≥ {RISE_LEVEL:g} (epochs; > 0: the onset comes first)",
           title=title)
    return fig


def forecast_scatter(measured: Sequence[float | None],
                     forecasts: Mapping[str, Sequence[float | None]], budget: float,
                     title: str = "") -> Figure:
    """Forecast against measured test grok epoch per method; never-generalised members at the
    budget's right edge, infinite forecasts at the top edge."""
    fig = Figure(figsize=(6, 5.5), constrained_layout=True)
    ax = fig.subplots()
    top = 1.3 * budget
    for method, values in forecasts.items():
        xs = [m if m is not None else 1.15 * budget for m in measured]
        ys = [min(f, top) if f is not None else math.nan for f in values]
        ax.scatter(xs, ys, s=16, alpha=0.75, label=method)
    ax.plot([0, top], [0, top], color="grey", linewidth=0.8)
    ax.axhline(budget, color="grey", linestyle=":", linewidth=0.8)
    ax.axvline(budget, color="grey", linestyle=":", linewidth=0.8)
    ax.set(xlim=(0, top), ylim=(0, top * 1.02), xlabel="measured test_grok_epoch (right of the "
           "dotted line: never)", ylabel="forecast from the early epoch", title=title)
    ax.legend(fontsize=7)
    return fig
