"""Fixed margins instead of a layout engine: every text of every figure still fits.

The check is matplotlib's own renderer: after a draw, each axes' tight box (tick labels,
axis labels, title, legend, colour bar) must lie inside the figure and clear of the other
panels. The inputs have the widths that real runs give tick labels (epochs in thousands,
variances of 1e-4, densities such as 0.125, names of searched parameters).
"""

from __future__ import annotations

from functools import cache

import pytest
from figure_cases import NAMES, build_figures
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from grokexp.figures.margins import fixed_figure, text_width


@cache  # built once for all the cases below
def _figures() -> dict[str, Figure]:
    return build_figures()


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
