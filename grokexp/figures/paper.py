"""The paper's figures, drawn from plain numbers: each function returns a Figure, never saves.

Per run: fig1 (accuracy and MC-dropout variance), fig2 (DRC), fig3 (cosine heatmaps), fig4
(final histograms), fig6 (mean and std per layer), fig7 (embedding histograms), fig11
(accuracy against inactive %). Per sweep: fig5 (rise epoch and delay against α), fig9 and
fig10 (train and test curves of several initialisations). Figures are built without pyplot,
so no global state or GUI backend is involved; the caller logs them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from .margins import RIGHT, SUPTITLE, TITLE_LINE, TOP, WIDE_LEFT, fixed_figure

if TYPE_CHECKING:  # drawn by a figure worker: importing this needs no matplotlib
    from matplotlib.figure import Figure

__all__ = [
    "fig1_mc_dropout", "fig2_drc", "fig3_cosine", "fig4_final_histograms", "fig6_mean_std",
    "fig7_embedding_histograms", "fig11_inactive", "fig5_scale", "curves_by_group",
    "LAYER_LABELS",
]

Series = Sequence[float]
LAYER_LABELS = {"embedding": "embedding", "hidden_weight": "hidden weights",
                "output_weight": "output weights"}


def _panels(count: int, width: float = 3.4, height: float = 3.0, cols: int | None = None,
            title_lines: int = 1, right: float = RIGHT) -> tuple[Figure, list]:
    """A grid of panels under a figure title, each with a title of ``title_lines`` lines."""
    cols = cols or count
    rows = -(-count // cols)
    titles = TOP + (title_lines - 1) * TITLE_LINE
    # densities and epochs as tick labels can be five characters wide (0.125, 12000)
    fig = fixed_figure(width * cols, height * rows, left=WIDE_LEFT, right=right,
                       top=titles + SUPTITLE, cols=cols, rows=rows, wgap=WIDE_LEFT + 0.05,
                       hgap=titles + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, axes[:count]


def fig1_mc_dropout(epochs: Series, train_acc: Series, test_acc: Series,
                    mc_epochs: Series, mc_var: Series, rate: float) -> Figure:
    """Train/test accuracy (left axis) and MC-dropout test-accuracy variance (right axis)."""
    fig = fixed_figure(6.4, 4.0, right=1.1)  # the variance axis's ticks and label
    ax = fig.subplots()
    ax.plot(epochs, train_acc, color="tab:blue", label="train accuracy")
    ax.plot(epochs, test_acc, color="tab:orange", label="test accuracy")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    right = ax.twinx()
    right.plot(mc_epochs, mc_var, color="tab:red", marker="o", markersize=3,
               label=f"test accuracy variance (dropout {rate:g})")
    right.set_ylabel("variance under MC dropout")
    lines = ax.get_lines() + right.get_lines()
    ax.legend(lines, [str(line.get_label()) for line in lines], loc="center right")
    ax.set_title("Fig. 1: accuracy and MC-dropout variance")
    return fig


def fig2_drc(rates: Series, curves: Mapping[int, Series]) -> Figure:
    """Dropout Robustness Curve: test accuracy against dropout rate, one line per epoch."""
    fig = fixed_figure(6.0, 4.0)
    ax = fig.subplots()
    for epoch, accs in sorted(curves.items()):
        ax.plot(rates, accs, marker="o", markersize=3, label=f"epoch {epoch}")
    ax.set_xlabel("dropout rate")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.legend()
    ax.set_title("Fig. 2: Dropout Robustness Curve")
    return fig


def fig3_cosine(matrices: Mapping[int, np.ndarray]) -> Figure:
    """Cosine similarity of the token embeddings (P×P) at chosen epochs."""
    items = sorted(matrices.items())
    fig, axes = _panels(max(1, len(items)), width=3.3, height=3.0, cols=min(4, len(items) or 1),
                        right=0.6)  # the colour bar's ticks and label
    image = None
    for ax, (epoch, matrix) in zip(axes, items, strict=False):
        image = ax.imshow(np.asarray(matrix), vmin=-1.0, vmax=1.0, cmap="coolwarm")
        ax.set_title(f"epoch {epoch}")
        ax.set_xlabel("token j")
        ax.set_ylabel("token i")
    if image is not None:
        # a narrow slot: the bar (aspect 20) is thin, and the default 15% would sit empty
        fig.colorbar(image, ax=axes, shrink=0.8, fraction=0.03, pad=0.02,
                     label="cosine similarity")
    fig.suptitle("Fig. 3: cosine similarity of embeddings")
    return fig


def _histogram(ax, values: np.ndarray, bins: int = 60, **style) -> None:
    # one filled outline instead of a patch per bin: fewer artists to draw, the same shape
    ax.hist(np.asarray(values).ravel(), bins=bins, density=True, histtype="stepfilled", **style)


def fig4_final_histograms(values: Mapping[str, np.ndarray]) -> Figure:
    """Distributions of the embedding and each layer's weights after training."""
    items = list(values.items())
    fig, axes = _panels(len(items), cols=len(items))
    for ax, (name, data) in zip(axes, items, strict=True):
        _histogram(ax, data, color="tab:blue", alpha=0.8)
        ax.set_title(LAYER_LABELS.get(name, name))
        ax.set_xlabel("value")
        ax.set_ylabel("density")
    fig.suptitle("Fig. 4: distributions after training")
    return fig


def fig6_mean_std(epochs: Series, stats: Mapping[str, tuple[Series, Series]],
                  title: str = "Fig. 6: mean (dashed) and std (solid) per layer") -> Figure:
    """Mean (dashed) and standard deviation (solid) of each layer's values against epoch."""
    fig = fixed_figure(6.4, 4.0, left=WIDE_LEFT)  # signed tick labels such as −0.025
    ax = fig.subplots()
    for index, (name, (mean, std)) in enumerate(stats.items()):
        color = f"C{index}"
        label = LAYER_LABELS.get(name, name)
        ax.plot(epochs, std, color=color, label=f"{label} std")
        ax.plot(epochs, mean, color=color, linestyle="--", label=f"{label} mean")
    ax.axhline(0.0, color="grey", linewidth=0.5)
    ax.set_xlabel("epoch")
    ax.set_ylabel("value")
    ax.legend(fontsize="small", ncols=2)
    ax.set_title(title)
    return fig


def fig7_embedding_histograms(values: Mapping[int, np.ndarray]) -> Figure:
    """Embedding value distributions at chosen epochs, one panel each."""
    items = sorted(values.items())
    fig, axes = _panels(max(1, len(items)), cols=min(4, len(items) or 1))
    for ax, (epoch, data) in zip(axes, items, strict=False):
        _histogram(ax, data, color="tab:green", alpha=0.8)
        ax.set_title(f"epoch {epoch}")
        ax.set_xlabel("embedding value")
        ax.set_ylabel("density")
    fig.suptitle("Fig. 7: embedding distribution during training")
    return fig


def fig11_inactive(inactive_pct: Series, train_acc: Series, test_acc: Series,
                   dead_pct: Series | None = None) -> Figure:
    """Train and test accuracy against the share of inactive (zero) ReLU outputs, in %.

    The path runs in time from 'start' to 'end'; ``dead_pct`` (units zero on every input)
    goes in the title when given.
    """
    two_lines = dead_pct is not None and len(dead_pct) > 0
    fig = fixed_figure(6.0, 4.0, top=TOP + TITLE_LINE * two_lines)
    ax = fig.subplots()
    ax.plot(inactive_pct, train_acc, color="tab:blue", marker=".", label="train accuracy")
    ax.plot(inactive_pct, test_acc, color="tab:orange", marker=".", label="test accuracy")
    if len(inactive_pct):
        ax.annotate("start", (inactive_pct[0], train_acc[0]), fontsize="small")
        ax.annotate("end", (inactive_pct[-1], test_acc[-1]), fontsize="small")
    ax.set_xlabel("inactive ReLU outputs (% of units × training inputs)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.legend()
    title = "Fig. 11: accuracy against inactive neurons"
    if dead_pct is not None and len(dead_pct):
        title += f"\n(units dead on every input: {min(dead_pct):.1f}–{max(dead_pct):.1f}%)"
    ax.set_title(title, fontsize="medium")
    return fig


def fig5_scale(alphas: Series, rise_epochs: Sequence[float | None],
               delays: Sequence[float | None]) -> Figure:
    """(a) Epoch of the test-accuracy rise and (b) grokking delay, against init scale α.

    One point per member (seeds overlap at the same α); the line joins per-α means, and
    members that never reached the level are left out (counted in the title).
    """
    some_missing = None in (*rise_epochs, *delays)
    fig, (left, right) = _panels(2, title_lines=2 if some_missing else 1)
    for ax, values, label in ((left, rise_epochs, "(a) epoch of test-accuracy rise"),
                              (right, delays, "(b) grokking delay (test − train epoch)")):
        pairs = [(a, v) for a, v in zip(alphas, values, strict=True) if v is not None]
        missing = len(alphas) - len(pairs)
        if pairs:
            xs, ys = zip(*pairs, strict=True)
            ax.scatter(xs, ys, color="tab:blue", alpha=0.6)
            levels = sorted(set(xs))
            ax.plot(levels, [np.mean([y for x, y in pairs if x == lv]) for lv in levels],
                    color="tab:blue")
        ax.set_xlabel("initialisation scale α")
        ax.set_ylabel("epochs")
        # the count on a line of its own: on one line the title is wider than its panel
        ax.set_title(label + (f"\n({missing} not reached)" if missing else ""),
                     fontsize="medium")
    fig.suptitle("Fig. 5: grokking against initialisation scale")
    return fig


def curves_by_group(groups: Mapping[str, Sequence[tuple[Series, Series, Series]]],
                    title: str) -> Figure:
    """Train (solid) and test (dashed) accuracy of members grouped by what was varied.

    ``groups`` maps a label to its members' (epochs, train_acc, test_acc); seeds of a group
    share its colour and one legend entry (Figs. 9 and 10).
    """
    fig = fixed_figure(7.5, 4.2)
    ax = fig.subplots()
    for index, (label, runs) in enumerate(groups.items()):
        for n, (epochs, train, test) in enumerate(runs):
            ax.plot(epochs, train, color=f"C{index}", label=label if n == 0 else None)
            ax.plot(epochs, test, color=f"C{index}", linestyle="--")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (train solid, test dashed)")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize="small", loc="lower right")
    ax.set_title(title, fontsize="medium")
    return fig
