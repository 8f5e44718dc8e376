"""Figures of a run: each function takes data and returns a matplotlib Figure; callers log it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from ..engine.train import MemberHistory  # noqa: E402

__all__ = ["accuracy_figure", "accuracy_overlay"]


def _mark(ax: Any, epoch: int | None, color: str, label: str) -> None:
    if epoch is not None:
        ax.axvline(epoch, color=color, linestyle=":", linewidth=1, label=f"{label} = {epoch}")


def accuracy_figure(history: MemberHistory, threshold: float, title: str = "") -> Figure:
    """Train and test accuracy against epoch, with the two grok epochs marked."""
    fig = Figure(figsize=(7, 4), constrained_layout=True)
    ax = fig.subplots()
    ax.plot(history.epochs, history.metrics["train_acc"], label="train", color="tab:blue")
    ax.plot(history.epochs, history.metrics["test_acc"], label="test", color="tab:orange")
    ax.axhline(threshold, color="grey", linewidth=0.8, linestyle="--")
    _mark(ax, history.train_grok_epoch, "tab:blue", "train grok epoch")
    _mark(ax, history.test_grok_epoch, "tab:orange", "test grok epoch")
    ax.set(xlabel="epoch", ylabel="accuracy", ylim=(-0.02, 1.02), title=title)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def accuracy_overlay(histories: Sequence[MemberHistory], labels: Sequence[str],
                     title: str = "") -> Figure:
    """Every member's train (solid) and test (dashed) accuracy on one axis, one colour each."""
    fig = Figure(figsize=(8, 4.5), constrained_layout=True)
    ax = fig.subplots()
    colors = matplotlib.colormaps["viridis"]
    for n, (history, label) in enumerate(zip(histories, labels, strict=True)):
        color = colors(n / max(1, len(histories) - 1))
        ax.plot(history.epochs, history.metrics["train_acc"], color=color, label=label)
        ax.plot(history.epochs, history.metrics["test_acc"], color=color, linestyle="--")
    ax.set(xlabel="epoch", ylabel="accuracy (train solid, test dashed)", ylim=(-0.02, 1.02),
           title=title)
    if len(histories) <= 16:
        ax.legend(loc="lower right", fontsize=7)
    return fig
