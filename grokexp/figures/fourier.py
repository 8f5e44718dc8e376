"""The Fourier progress measures of a run (Nanda et al. 2023) beside its accuracy.

Data in, Figure out: three panels over one epoch axis, so that the reading of the paper can
be checked by eye: the restricted loss falls before the test accuracy rises, the excluded
loss rises, the embedding's Gini coefficient over frequencies rises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .margins import WIDE_LEFT, fixed_figure

if TYPE_CHECKING:  # drawn by a figure worker: importing this needs no matplotlib
    from matplotlib.figure import Figure

__all__ = ["fourier_figure", "FOURIER_COLUMNS"]

Series = Sequence[float]
FOURIER_COLUMNS = ("fourier_restricted_loss", "fourier_excluded_loss", "fourier_gini")


def fourier_figure(epochs: Sequence[int], train_acc: Series, test_acc: Series,
                   measure_epochs: Sequence[int], restricted: Series, excluded: Series,
                   gini_epochs: Sequence[int], gini: Series) -> Figure:
    """Accuracy (top), restricted and excluded loss on a log axis (middle), the token
    embedding's Gini coefficient over frequencies (bottom); ``gini`` may be empty (an
    architecture without a token embedding)."""
    fig = fixed_figure(7.0, 8.0, left=WIDE_LEFT, rows=3, hgap=0.45)
    top, middle, bottom = fig.subplots(3, 1, sharex=True)
    top.plot(epochs, train_acc, color="tab:blue", label="train accuracy")
    top.plot(epochs, test_acc, color="tab:orange", label="test accuracy")
    top.set(ylabel="accuracy", ylim=(-0.02, 1.02))
    top.legend(loc="lower right", fontsize="small")
    top.set_title("Fourier progress measures (Nanda et al. 2023)", fontsize="medium")
    middle.plot(measure_epochs, restricted, color="tab:green", marker=".", markersize=3,
                label="restricted loss (test pairs)")
    middle.plot(measure_epochs, excluded, color="tab:red", marker=".", markersize=3,
                label="excluded loss (train pairs)")
    positive = [v for v in (*restricted, *excluded) if v > 0]
    if positive:
        from matplotlib.ticker import LogFormatter

        middle.set_yscale("log")
        # plain labels ("3.9", "1e-02"): the default's "3.9×10⁰" goes through mathtext,
        # parsed anew for each member's new values (about a sixth of this figure's CPU)
        middle.yaxis.set_major_formatter(LogFormatter())
        middle.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))
    middle.set(ylabel="cross-entropy")
    middle.legend(loc="best", fontsize="small")
    if gini:
        bottom.plot(gini_epochs, gini, color="tab:purple", marker=".", markersize=3)
    bottom.set(xlabel="epoch", ylabel="Gini over frequencies", ylim=(-0.02, 1.02))
    return fig
