"""One figure of every kind grokexp draws, from inputs with the widths real runs give tick
labels (epochs in thousands, variances of 1e-4, densities such as 0.125, names of searched
parameters): the cases the figure tests share."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from grokexp.figures import paper as fp
from grokexp.figures import study as fs
from grokexp.figures.run import accuracy_figure, accuracy_overlay
from grokexp.series import MemberSeries

NAMES = ["fig1", "fig2", "fig3", "fig4", "fig6", "fig7", "fig11", "fig5", "curves",
         "accuracy", "overlay", "history", "importance", "space"]
EPOCHS = list(range(0, 3001, 100))
RISE = [min(1.0, e / 2000) for e in EPOCHS]


def build_figures() -> dict[str, Figure]:
    rng = np.random.default_rng(0)
    wide = {e: rng.normal(scale=3.0, size=400) for e in (0, 150, 600, 1650, 2400)}  # 0.125
    curves = MemberSeries(epochs=EPOCHS, columns={"train_acc": (EPOCHS, [1.0] * len(EPOCHS)),
                                                  "test_acc": (EPOCHS, RISE)},
                          train_grok_epoch=200, test_grok_epoch=1900)
    return {
        "fig1": fp.fig1_mc_dropout(EPOCHS, [1.0] * len(EPOCHS), RISE, EPOCHS[::10],
                                   [1e-5, 2e-4, 3e-5, 1e-6], 0.3),
        "fig2": fp.fig2_drc([0.0, 0.5, 0.9], {0: [0.0, 0.0, 0.0], 2500: [1.0, 0.3, 0.0]}),
        "fig3": fp.fig3_cosine({e: np.eye(53) for e in (0, 300, 450, 1200)}),
        "fig4": fp.fig4_final_histograms({"embedding": rng.normal(size=500),
                                          "hidden_weight": rng.normal(size=500),
                                          "output_weight": rng.normal(size=500)}),
        "fig6": fp.fig6_mean_std(EPOCHS, {n: ([-0.04] * len(EPOCHS), RISE)
                                          for n in ("embedding", "hidden_weight")}),
        "fig7": fp.fig7_embedding_histograms(wide),
        "fig11": fp.fig11_inactive([52.8, 42.5, 48.1], [0.02, 1.0, 1.0], [0.0, 0.0, 1.0],
                                   [0.0, 1.5]),
        "fig5": fp.fig5_scale([1, 3, 5, 7], [530, 420, 12000, None], [540, None, 230, None]),
        "curves": fp.curves_by_group({"embedding: uniform[1.6, 2.0] shift=0.6":
                                      [(EPOCHS, RISE, RISE)]}, "layer_shift: train and test"),
        "accuracy": accuracy_figure(curves, 0.95, "baseline"),
        "overlay": accuracy_overlay([curves] * 3, ["a", "b", "c"], "sweep"),
        "history": fs.history_figure(list(range(8)), [10700.0, 900, 6000, 17700, 500, 1e3,
                                                       2e3, 3e3],
                                     [False, False, True] + [False] * 5, "grokking_delay"),
        "importance": fs.importance_figure({"model.embedding_activation": 0.6,
                                            "train.weight_decay": 0.4}),
        "space": fs.space_figure([-0.2, 1.8, 0.5], [0.01, 3.0, 0.3], [700.0, 6000, 16000],
                                 [False, True, False], "init.embedding.shift",
                                 "train.weight_decay", ylog=True),
    }
