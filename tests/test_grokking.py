"""The grokking rules (grokexp/grokking.py) on series worked out by hand: the grok epoch, the
rise, the onset of a change, the delay and censoring, with their edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from grokexp.grokking import (
    RISE_LEVEL,
    censored,
    grok_epoch,
    grok_epochs,
    grokking_delay,
    onset,
    reached,
    rise_epoch,
    smooth,
)

EPOCHS = list(range(0, 100, 10))
NAN = math.nan


def test_a_value_reaches_a_threshold_at_or_above_it_and_nan_never_does():
    assert reached(0.95, 0.95) and reached(1.0, 0.95)
    assert not reached(0.9499, 0.95)
    assert not reached(NAN, 0.95) and not reached(NAN, -math.inf)


def test_the_grok_epoch_is_the_first_evaluation_at_or_above_the_threshold():
    acc = [0.0, 0.1, 0.49, 0.5, 0.97, 0.2, 1.0, 1.0, 1.0, 1.0]
    assert grok_epoch(EPOCHS, acc, 0.95) == 40  # the first, though it falls back at 50
    assert grok_epoch(EPOCHS, acc, 0.5) == 30  # equal to the threshold counts
    assert grok_epoch(EPOCHS, acc, 1.01) is None  # never reached
    assert grok_epoch([], [], 0.95) is None  # nothing evaluated


def test_a_grok_epoch_at_epoch_zero_is_a_grok_epoch():
    assert grok_epoch([0, 10], [0.96, 0.2], 0.95) == 0
    assert grok_epochs({"train_acc": ([0, 10], [1.0, 1.0]),
                        "test_acc": ([0, 10], [0.0, 1.0])}, 0.95) == (0, 10)


def test_nan_values_are_skipped_not_taken_as_reached():
    assert grok_epoch([0, 10, 20, 30], [NAN, 0.2, NAN, 0.99], 0.95) == 30
    assert grok_epoch([0, 10], [NAN, NAN], 0.0) is None


def test_epochs_and_values_must_pair_up_and_numpy_gives_python_ints():
    with pytest.raises(ValueError):
        grok_epoch([0, 10], [1.0], 0.5)
    epoch = grok_epoch(np.array(EPOCHS), np.linspace(0, 1, 10), 0.5)
    assert epoch == 50 and type(epoch) is int  # 5/9 ≥ 0.5 at index 5


def test_each_column_is_read_on_its_own_epochs():
    # train measured every 10 epochs, test every 25: each grok epoch is one of its own epochs
    columns = {"train_acc": ([0, 10, 20, 30], [0.1, 0.5, 0.96, 1.0]),
               "test_acc": ([0, 25, 50, 75], [0.0, 0.3, 0.95, 1.0])}
    assert grok_epochs(columns, 0.95) == (20, 50)
    assert grok_epochs({}, 0.95) == (None, None)  # no accuracy columns: nothing reached


def test_the_rise_is_the_test_accuracy_reaching_one_half():
    assert RISE_LEVEL == 0.5
    assert rise_epoch(EPOCHS, [0.0, 0.1, 0.2, 0.49, 0.5, 0.9, 1, 1, 1, 1]) == 40
    assert rise_epoch(EPOCHS, [0.1] * 10) is None


def test_the_delay_needs_both_grok_epochs():
    assert grokking_delay(200, 1900) == 1700
    assert grokking_delay(200, 200) == 0
    assert grokking_delay(None, 1900) is None and grokking_delay(200, None) is None


def test_censored_means_no_test_grok_epoch_within_the_budget():
    assert censored(None, 3000) and censored(None, None)
    assert not censored(3000, 3000)  # reached at the last epoch of the budget
    assert censored(3010, 3000)  # reached only after the budget (a run that went on)
    assert not censored(3010, None)  # the budget not known: only a missing epoch censors
    assert not censored(0, 3000)


def test_the_smoothing_is_a_trailing_mean_that_skips_nans():
    assert smooth([1.0, 2.0, 3.0, 4.0], window=2).tolist() == [1.0, 1.5, 2.5, 3.5]
    assert smooth([1.0, NAN, 3.0], window=2).tolist() == [1.0, 1.0, 3.0]
    assert np.isnan(smooth([NAN, NAN, 1.0], window=2)[0])


def test_a_step_sets_on_where_three_of_the_last_five_values_have_moved():
    # 0 0 0 0 1 1 …: the trailing means of five are 0, 0, 0, 0, .2, .4, .6: half at epoch 60
    values = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    assert onset(EPOCHS, values) == 60
    assert onset(EPOCHS, values, window=1) == 40  # unsmoothed: the step itself
    assert onset(EPOCHS, values, share=0.2) == 40  # means .2 at epoch 40: a fifth of the way


def test_a_fall_sets_on_like_a_rise_and_a_flat_series_never_does():
    values = [10, 10, 10, 4, 4, 4, 4, 4, 4, 4]
    assert onset(EPOCHS, values, window=1) == 30  # change −6, all of it at epoch 30
    # window 5: means 10, 10, 10, 8.5, 7.6, 6.4: half of −6 (7.0) first at epoch 50
    assert onset(EPOCHS, values) == 50
    assert onset(EPOCHS, [3.0] * 10) is None  # no change
    assert onset(EPOCHS[:1], [3.0]) is None  # one value: no change to measure
    assert onset([], []) is None


def test_nans_in_a_series_are_skipped_by_the_onset():
    # measured every other evaluation: window 1 reads 0, 0, 1, 1 at epochs 0, 20, 40, 60
    values = [0.0, NAN, 0.0, NAN, 1.0, NAN, 1.0, NAN, NAN, NAN]
    assert onset(EPOCHS, values, window=1) == 40
    # window 2: means 0, 0, 0, 0, 1, 1, 1, 1, nan, nan (an evaluation's own NaN skipped)
    assert onset(EPOCHS, values, window=2) == 40
    assert onset(EPOCHS, [NAN] * 10) is None
