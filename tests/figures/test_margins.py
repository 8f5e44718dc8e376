"""Fixed margins instead of a layout engine: every text of every figure still fits.

The check is matplotlib's own renderer: after a draw, each axes' tight box (tick labels,
axis labels, title, legend, colour bar) must lie inside the figure and clear of the other
panels. The inputs have the widths that real runs give tick labels (epochs in thousands,
variances of 1e-4, densities such as 0.125, names of searched parameters).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from grokexp.figures import paper as fp
from grokexp.figures import study as fs
from grokexp.figures.margins import fixed_figure, text_width
from grokexp.figures.run import AccuracyCurves, accuracy_figure, accuracy_overlay

NAMES = ["fig1", "fig2", "fig3", "fig4", "fig6", "fig7", "fig11", "fig5", "curves",
         "accuracy", "overlay", "history", "importance", "space"]
EPOCHS = list(range(0, 3001, 100))
RISE = [min(1.0, e / 2000) for e in EPOCHS]


@cache  # built once for all the cases below
def _figures() -> dict[str, Figure]:
    rng = np.random.default_rng(0)
    wide = {e: rng.normal(scale=3.0, size=400) for e in (0, 150, 600, 1650, 2400)}  # 0.125
    curves = AccuracyCurves(EPOCHS, [1.0] * len(EPOCHS), RISE, 200, 1900)
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


@pytest.mark.parametrize("name", NAMES)
def test_every_text_fits_inside_its_figure_and_clear_of_other_panels(name: str) -> None:
    fig = _figures()[name]
    assert set(_figures()) == set(NAMES)
    assert fig.get_layout_engine() is None  # the point: savefig draws the figure once
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    page = fig.bbox
    boxes = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        box = ax.get_tightbbox(renderer)
        assert box is not None  # a visible axes has a box
        # 1 pixel: the edge of a box that a text's antialiasing touches, not a clipped glyph
        assert box.x0 >= -1 and box.y0 >= -1, (name, ax.get_title(), box)
        assert box.x1 <= page.x1 + 1 and box.y1 <= page.y1 + 1, (name, ax.get_title(), box)
        boxes.append((ax.get_position().bounds, box))
    for text in fig.texts:  # the suptitle
        title = text.get_window_extent(renderer)
        assert title.x0 >= 0 and title.x1 <= page.x1 and title.y1 <= page.y1, name
        for _, box in boxes:
            assert not title.overlaps(box), name  # above the panels' titles
    for i, (pos_a, box_a) in enumerate(boxes):
        for pos_b, box_b in boxes[i + 1:]:
            if pos_a != pos_b:  # a twin axis (Fig. 1's variance) shares its panel on purpose
                assert not box_a.overlaps(box_b), name


def test_fixed_figure_puts_the_margins_in_inches() -> None:
    fig = fixed_figure(8.0, 4.0, left=1.0, right=0.5, bottom=0.5, top=1.0, cols=2, wgap=0.5)
    (a, b) = fig.subplots(1, 2)
    width, height = fig.get_size_inches()
    x0, y0, w, h = (v * s for v, s in zip(a.get_position().bounds, (width, height) * 2,
                                          strict=True))
    assert (x0, y0, w, h) == pytest.approx((1.0, 0.5, 3.0, 2.5))  # (8 - 1 - 0.5 - 0.5) / 2
    assert b.get_position().x0 * width == pytest.approx(4.5)  # after a 0.5 in gap
    with pytest.raises(ValueError, match="no room"):
        fixed_figure(1.0, 1.0, left=0.7, right=0.5)


def test_text_width_agrees_with_the_renderer() -> None:
    fig = Figure(figsize=(4, 1))
    text = fig.text(0, 0, "init.embedding.shift")
    drawn = text.get_window_extent(FigureCanvasAgg(fig).get_renderer()).width / fig.dpi
    assert text_width(["x", "init.embedding.shift"]) == pytest.approx(drawn, rel=0.05)
    assert text_width([]) == 0.0
