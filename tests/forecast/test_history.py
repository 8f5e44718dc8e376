"""The turning point of an indicator (the forecast's "peak" rule), on cases worked out by hand."""

from __future__ import annotations

import numpy as np

from grokexp.forecast.history import turning_point

EPOCHS = list(range(0, 100, 10))


def test_a_rise_then_a_fall_turns_at_the_smoothed_peak():
    loss = [1, 2, 3, 4, 9, 4, 3, 2, 1, 0]
    # smoothed (window 1) peak at epoch 40; window 5: means 1, 1.5, 2, 2.5, 3.8, 4.4, 4.6,
    # 4.4, 3.8, 2: peak at epoch 60
    assert turning_point(EPOCHS, loss, window=1) == 40
    assert turning_point(EPOCHS, loss) == 60
    assert turning_point(EPOCHS, list(range(10))) is None  # still rising: no turn


def test_a_series_that_only_falls_or_starts_at_its_top_has_no_turning_point():
    # the maximum of a falling series is its first value: not a turn, no lead to credit
    assert turning_point(EPOCHS, np.linspace(5, 1, 10)) is None
    assert turning_point(EPOCHS, np.linspace(5, 1, 10), window=1) is None
    # a plateau at the start is the same (argmax takes the first of equal values)
    assert turning_point(EPOCHS, [5, 5, 4, 3, 2, 1, 1, 1, 1, 1], window=1) is None
    # one step up, then down: a real maximum at epoch 10
    assert turning_point(EPOCHS, [4, 5, 4, 3, 2, 1, 1, 1, 1, 1], window=1) == 10
