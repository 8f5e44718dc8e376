"""Fixed margins, in inches, instead of a layout engine.

With a layout engine (constrained or tight) ``savefig`` lays the figure out first, measuring
every text's box, and then draws it again; without one a member's seven paper figures save
in about half the time. Our figures know their text in advance (a title, axis labels, short
tick labels), so margins fixed once in inches leave room for it and the figure is drawn
once. Defaults are for the rcParams font size (10 pt) and a one-line title;
tests/figures/test_margins.py checks with the renderer that every text fits.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # matplotlib is imported by what draws (a figure worker), not by importers
    from matplotlib.figure import Figure

__all__ = ["fixed_figure", "text_width", "LEFT", "WIDE_LEFT", "RIGHT", "BOTTOM", "TOP",
           "SUPTITLE", "TITLE_LINE"]

# inches, at 10 pt: tick labels up to four characters wide and the axis label beside them
LEFT = 0.7
WIDE_LEFT = 0.85  # for tick labels of five or six characters: 0.125, −0.025, 12000
RIGHT = 0.2  # half of the last x tick label
BOTTOM = 0.55  # x tick labels and the x label
TOP = 0.35  # an axes title of one line
TITLE_LINE = 0.17  # each further line of a title
SUPTITLE = 0.22  # a figure title above the axes titles


def fixed_figure(width: float, height: float, *, left: float = LEFT, right: float = RIGHT,
                 bottom: float = BOTTOM, top: float = TOP, cols: int = 1, rows: int = 1,
                 wgap: float = 0.0, hgap: float = 0.0) -> Figure:
    """A Figure of ``width`` × ``height`` inches whose subplots leave these margins, and
    ``wgap`` / ``hgap`` inches between the ``cols`` × ``rows`` grid's panels."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    panel_w = (width - left - right - (cols - 1) * wgap) / cols
    panel_h = (height - bottom - top - (rows - 1) * hgap) / rows
    if panel_w <= 0 or panel_h <= 0:
        raise ValueError(f"margins leave no room for the axes of a {width}×{height} in figure")
    # subplots_adjust takes fractions of the figure, and the gaps as fractions of a panel
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - top / height, wspace=wgap / panel_w, hspace=hgap / panel_h)
    return fig


def text_width(texts: Iterable[str], size: float | str | None = None) -> float:
    """Width in inches of the widest text in the default font (0 for none): for a margin
    that must fit labels only known at call time, measured without drawing anything."""
    from matplotlib import rcParams
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    prop = FontProperties(size=size if size is not None else rcParams["font.size"])
    measure = TextToPath()
    return max((measure.get_text_width_height_descent(text, prop, ismath=False)[0] / 72
                for text in texts), default=0.0)
