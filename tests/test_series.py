"""A member's series rebuilt from a tracked run's points (what ``RunReader.series`` and the
forecast both read runs into): columns in epoch order, whatever order the store gave."""

from __future__ import annotations

from grokexp.series import MemberSeries


def test_points_become_columns_in_epoch_order_and_the_evaluations_are_test_acc_s():
    points = {"test_acc": {20: 0.5, 0: 0.0, 10: 0.25},
              "mc_dropout_acc_var": {10: 0.01, 0: 0.02},
              "train_acc": {10: 1.0, 20: 1.0, 0: 0.1}}
    member = MemberSeries.from_points(points, label="m", threshold=0.9, budget=30)
    assert member.columns == {"test_acc": ([0, 10, 20], [0.0, 0.25, 0.5]),
                              "mc_dropout_acc_var": ([0, 10], [0.02, 0.01]),
                              "train_acc": ([0, 10, 20], [0.1, 1.0, 1.0])}
    assert member.epochs == [0, 10, 20] and member.last_epoch == 20
    assert (member.label, member.threshold, member.budget) == ("m", 0.9, 30)
    assert member.train_grok_epoch is None  # dated by grokexp.grokking, not here


def test_a_run_without_test_accuracy_has_no_evaluations():
    member = MemberSeries.from_points({"train_acc": {5: 1.0}})
    assert member.epochs == [] and member.last_epoch == 0
    assert member.columns == {"train_acc": ([5], [1.0])}
