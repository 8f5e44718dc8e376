"""Every paper figure draws from small inputs and carries what it should show."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure

from grokexp.figures import paper as fp


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=40)
    return buffer.getvalue()


def test_run_figures_draw() -> None:
    rng = np.random.default_rng(0)
    epochs = [0, 10, 20, 30]
    fig1 = fp.fig1_mc_dropout(epochs, [0.1, 0.9, 1, 1], [0, 0.1, 0.6, 1], [0, 20], [0, 0.01], 0.3)
    assert len(fig1.axes) == 2  # accuracy axis and variance axis
    fig2 = fp.fig2_drc([0.0, 0.5], {0: [0.0, 0.0], 30: [1.0, 0.8]})
    assert len(fig2.axes[0].get_lines()) == 2
    fig3 = fp.fig3_cosine({0: np.eye(5), 30: np.ones((5, 5))})
    assert sum(ax.get_visible() for ax in fig3.axes) == 3  # two heatmaps and a colour bar
    fig4 = fp.fig4_final_histograms({"embedding": rng.normal(size=50),
                                     "hidden_weight": rng.normal(size=50)})
    assert [ax.get_title() for ax in fig4.axes] == ["embedding", "hidden weights"]
    fig6 = fp.fig6_mean_std(epochs, {"embedding": ([0, 0, 0, 0], [1, 2, 3, 4])})
    styles = [line.get_linestyle() for line in fig6.axes[0].get_lines()[:2]]
    assert styles == ["-", "--"]  # std solid, mean dashed
    fig7 = fp.fig7_embedding_histograms({0: rng.normal(size=50), 150: rng.normal(size=50)})
    fig11 = fp.fig11_inactive([50, 20, 30], [0.1, 1, 1], [0, 0.2, 1])
    for fig in (fig1, fig2, fig3, fig4, fig6, fig7, fig11):
        assert _png(fig).startswith(b"\x89PNG")


def test_sweep_figures_draw() -> None:
    fig5 = fp.fig5_scale([1, 1, 2], [100, 120, None], [50, 60, None])
    assert "1 not reached" in fig5.axes[0].get_title()
    groups = {"shift 0": [([0, 10], [0, 1], [0, 0.5]), ([0, 10], [0, 1], [0, 0.4])],
              "shift 0.6": [([0, 10], [0, 0.5], [0, 0.1])]}
    fig9 = fp.curves_by_group(groups, "Fig. 9")
    labels = [line.get_label() for line in fig9.axes[0].get_lines()]
    assert labels.count("shift 0") == 1 and "shift 0.6" in labels  # one entry per group
    assert [line.get_linestyle() for line in fig9.axes[0].get_lines()[:2]] == ["-", "--"]
    assert _png(fig5).startswith(b"\x89PNG") and _png(fig9).startswith(b"\x89PNG")


def test_short_labels_for_init_tables() -> None:
    from grokexp.figures.sets import short_value

    assert short_value({}) == "default"
    assert short_value({"scheme": "uniform", "low": 0.4, "high": 0.8}) == "uniform[0.4, 0.8]"
    rest = {"hidden": {"scheme": "normal", "mean": 0.2, "std": 0.1},
            "output": {"scheme": "normal", "mean": 0.2, "std": 0.1}}
    assert short_value(rest) == "hidden+output: normal(0.2, 0.1)"
    assert short_value(2.0) == "2.0"


def test_the_fourier_figure_labels_its_log_axis_in_plain_numbers() -> None:
    """The losses' log axis reads "3.9", "1e-02": no mathtext ("3.9×10⁰"), parsed anew for each
    member's new labels. Checked on a narrow range (minor ticks
    labelled) and a wide one (decades), against the numbers written out by hand."""
    from grokexp.figures.fourier import fourier_figure

    def labels(low: float, high: float) -> list[str]:
        fig = fourier_figure([0, 10], [0.1, 1.0], [0.0, 1.0], [0, 10], [high, low],
                             [low, high], [0, 10], [0.1, 0.9])
        _png(fig)  # the labels are set when drawn
        middle = fig.axes[1]
        texts = [t.get_text() for t in (*middle.yaxis.get_ticklabels(),
                                         *middle.yaxis.get_ticklabels(minor=True))]
        return [t.replace("\u2212", "-") for t in texts if t]  # matplotlib's minus sign

    narrow = labels(3.9, 3.98)
    assert narrow and not any("$" in t for t in narrow), narrow
    assert "3.9" in narrow, narrow
    wide = labels(0.001, 1.0)
    assert {"1", "1e-01", "1e-02", "1e-03"} <= set(wide), wide
    assert not any("$" in t for t in wide), wide
