"""Figures of an Optuna study: each function takes plain data and returns a Figure.

Censored trials are drawn apart (grey crosses at the penalty), never mixed with real values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from .margins import LEFT, WIDE_LEFT, fixed_figure, text_width  # noqa: E402

__all__ = ["history_figure", "importance_figure", "space_figure"]


def history_figure(numbers: Sequence[int], values: Sequence[float],
                   censored: Sequence[bool], objective: str, title: str = "") -> Figure:
    """Objective of every completed trial against its number, with the best so far."""
    fig = fixed_figure(7, 4, left=WIDE_LEFT)  # objective ticks up to five digits
    ax = fig.subplots()
    real = [(n, v) for n, v, c in zip(numbers, values, censored, strict=True) if not c]
    cens = [(n, v) for n, v, c in zip(numbers, values, censored, strict=True) if c]
    if real:
        ax.scatter([n for n, _ in real], [v for _, v in real], color="tab:blue", s=18,
                   label="trial")
    if cens:
        ax.scatter([n for n, _ in cens], [v for _, v in cens], color="grey", marker="x", s=22,
                   label="censored (penalty)")
    order = sorted(zip(numbers, values, strict=True))
    best, line = float("inf"), []
    for n, v in order:
        best = min(best, v)
        line.append((n, best))
    if line:
        ax.step(*zip(*line, strict=True), where="post", color="tab:red", label="best so far")
    ax.set(xlabel="trial", ylabel=objective.replace("_", " "), title=title)
    ax.legend(fontsize=8)
    return fig


def importance_figure(importances: Mapping[str, float], title: str = "") -> Figure:
    """Horizontal bars: each parameter's share of the objective's variance (fANOVA)."""
    # the parameter names are the tick labels: the left margin is the widest of them
    fig = fixed_figure(7, 1.2 + 0.5 * max(1, len(importances)),
                       left=max(LEFT, 0.25 + text_width(importances)))
    ax = fig.subplots()
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names], color="tab:green")
    ax.set(xlabel="importance", xlim=(0, 1), title=title or "parameter importances")
    return fig


def space_figure(xs: Sequence[float], ys: Sequence[float], values: Sequence[float],
                 censored: Sequence[bool], xlabel: str, ylabel: str, ylog: bool = False,
                 xlog: bool = False, title: str = "") -> Figure:
    """The objective over two parameters: completed trials coloured by value."""
    fig = fixed_figure(6.5, 5, left=0.8)  # a colorbar takes its room from the axes' width
    ax = fig.subplots()
    real = [(x, y, v) for x, y, v, c in zip(xs, ys, values, censored, strict=True) if not c]
    cens = [(x, y) for x, y, c in zip(xs, ys, censored, strict=True) if c]
    if real:
        rx, ry, rv = zip(*real, strict=True)
        points = ax.scatter(rx, ry, c=rv, cmap="viridis_r", s=40, edgecolors="black",
                            linewidths=0.4)
        fig.colorbar(points, ax=ax, label="objective (lower is better)")
    if cens:
        ax.scatter([x for x, _ in cens], [y for _, y in cens], color="grey", marker="x", s=30,
                   label="censored")
        ax.legend(fontsize=8)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if ylog:
        ax.set_yscale("log")
    if xlog:
        ax.set_xscale("log")
    return fig
