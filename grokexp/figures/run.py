"""Figures of a run: each function takes data and returns a matplotlib Figure; callers log it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..series import MemberSeries
from .margins import fixed_figure

if TYPE_CHECKING:  # drawn by a figure worker: importing this needs no matplotlib
    from matplotlib.figure import Figure

__all__ = ["ACCURACY_COLUMNS", "accuracy_figure", "accuracy_overlay", "accuracy_figures",
           "overlay_figures"]

# What the accuracy figures draw of a member: send a figure worker ``series.only(*these)``.
ACCURACY_COLUMNS = ("train_acc", "test_acc")


def _column(series: MemberSeries, name: str) -> tuple[list[int], list[float]]:
    return series.epochs_of(name), series.values(name)


def _mark(ax: Any, epoch: int | None, color: str, label: str) -> None:
    if epoch is not None:
        ax.axvline(epoch, color=color, linestyle=":", linewidth=1, label=f"{label} = {epoch}")


def accuracy_figure(history: MemberSeries, threshold: float, title: str = "") -> Figure:
    """Train and test accuracy against epoch, with the two grok epochs marked."""
    fig = fixed_figure(7, 4)
    ax = fig.subplots()
    ax.plot(*_column(history, "train_acc"), label="train", color="tab:blue")
    ax.plot(*_column(history, "test_acc"), label="test", color="tab:orange")
    ax.axhline(threshold, color="grey", linewidth=0.8, linestyle="--")
    _mark(ax, history.train_grok_epoch, "tab:blue", "train grok epoch")
    _mark(ax, history.test_grok_epoch, "tab:orange", "test grok epoch")
    ax.set(xlabel="epoch", ylabel="accuracy", ylim=(-0.02, 1.02), title=title)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def accuracy_overlay(histories: Sequence[MemberSeries], labels: Sequence[str],
                     title: str = "") -> Figure:
    """Every member's train (solid) and test (dashed) accuracy on one axis, one colour each."""
    fig = fixed_figure(8, 4.5)
    ax = fig.subplots()
    import matplotlib

    colors = matplotlib.colormaps["viridis"]
    for n, (history, label) in enumerate(zip(histories, labels, strict=True)):
        color = colors(n / max(1, len(histories) - 1))
        ax.plot(*_column(history, "train_acc"), color=color, label=label)
        ax.plot(*_column(history, "test_acc"), color=color, linestyle="--")
    ax.set(xlabel="epoch", ylabel="accuracy (train solid, test dashed)", ylim=(-0.02, 1.02),
           title=title)
    if len(histories) <= 16:
        ax.legend(loc="lower right", fontsize=7)
    return fig


def accuracy_figures(curves: MemberSeries, threshold: float,
                     title: str = "") -> dict[str, Figure]:
    """A member run's accuracy figure, keyed by its artifact path (a figure-worker job)."""
    return {"figures/accuracy.png": accuracy_figure(curves, threshold, title)}


def overlay_figures(curves: Sequence[MemberSeries], labels: Sequence[str],
                    title: str = "") -> dict[str, Figure]:
    """A sweep's parent-run overlay, keyed by its artifact path (a figure-worker job)."""
    return {"figures/accuracy_overlay.png": accuracy_overlay(curves, labels, title)}
