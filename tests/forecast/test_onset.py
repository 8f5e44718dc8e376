"""The change-point rule, the rise and the turning point on cases worked out by hand."""

from __future__ import annotations

import numpy as np

from grokexp.forecast.onset import change_point, rise_epoch, smooth, turning_point

EPOCHS = list(range(0, 100, 10))


def test_a_step_is_found_where_three_of_the_last_five_values_have_moved():
    # 0 0 0 0 1 1 …: the trailing means of five are 0, 0, 0, 0, .2, .4, .6: half at epoch 60
    values = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    assert change_point(EPOCHS, values) == 60
    assert change_point(EPOCHS, values, window=1) == 40  # unsmoothed: the step itself
    assert change_point(EPOCHS, values, fraction=0.2) == 40


def test_a_falling_series_and_a_flat_one():
    values = [10, 10, 10, 4, 4, 4, 4, 4, 4, 4]
    assert change_point(EPOCHS, values, window=1) == 30  # change −6, all of it at epoch 30
    # window 5: means 10, 10, 10, 8.5, 7.6, 6.4: half of −6 (7.0) first at epoch 50
    assert change_point(EPOCHS, values) == 50
    assert change_point(EPOCHS, [3.0] * 10) is None
    assert change_point(EPOCHS[:1], [3.0]) is None


def test_nans_are_skipped_by_the_smoothing():
    s = smooth([1.0, np.nan, 3.0], window=2)
    assert s.tolist() == [1.0, 1.0, 3.0]


def test_rise_and_turning_point():
    acc = [0.0, 0.1, 0.49, 0.5, 0.97, 0.2, 1.0, 1.0, 1.0, 1.0]
    assert rise_epoch(EPOCHS, acc, 0.5) == 30
    assert rise_epoch(EPOCHS, acc, 0.95) == 40
    assert rise_epoch(EPOCHS, acc, 1.01) is None
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
