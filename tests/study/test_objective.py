"""The trial objective: upper median over seeds, censored seeds scored with the penalty."""

from __future__ import annotations

import pytest

from grokexp.engine.train import MemberSeries
from grokexp.errors import SpecError
from grokexp.spec.io import load_spec
from grokexp.study.objective import censor_value, trial_outcome


def seed(train: int | None, test: int | None, status: str = "FINISHED") -> MemberSeries:
    return MemberSeries(0, train_grok_epoch=train, test_grok_epoch=test, status=status)


def test_objective_is_the_upper_median_of_real_delays():
    out = trial_outcome([seed(100, 400), seed(100, 250), seed(90, 1000)], "grokking_delay",
                        epochs=2000, censor_penalty=2.0)
    assert out.value == 300 and not out.censored
    assert out.seed_scores == [300, 150, 910] and out.spread == 760
    even = trial_outcome([seed(0, 10), seed(0, 30)], "test_grok_epoch", 100, 2.0)
    assert even.value == 30  # one seed's value (the worse middle one), never an average


def test_censored_seeds_score_the_penalty_and_never_a_number():
    mixed = trial_outcome([seed(100, None), seed(100, 300), seed(50, None)], "grokking_delay",
                          epochs=500, censor_penalty=2.0)
    assert mixed.value == censor_value(500, 2.0) == 1000.0 and mixed.censored
    assert mixed.seed_scores == [None, 200, None] and mixed.censored_seeds == 2
    assert mixed.spread is None
    one_censored = trial_outcome([seed(10, 20), seed(10, None), seed(10, 40)],
                                 "grokking_delay", 500, 2.0)
    assert one_censored.value == 30 and not one_censored.censored
    half = trial_outcome([seed(10, 20), seed(10, None)], "grokking_delay", 500, 2.0)
    assert half.value == 1000.0 and half.censored  # two seeds: both must generalise
    failed = trial_outcome([seed(10, 20, "FAILED")], "grokking_delay", 500, 3.0)
    assert failed.value == 1500 and failed.censored
    assert failed.value > 500  # greater than any real delay within the epoch budget


def test_optimize_section_is_checked_with_paths():
    text = 'name = "o"\n[optimize]\n[optimize.space]\n'
    with pytest.raises(SpecError) as info:
        load_spec(text + '"train.lr" = {low = 0.1}\n"init.bogus" = {low = 0, high = 1}\n'
                  '"model.hidden" = {choices = [8, 16], low = 1}', "o.toml")
    assert info.value.problems == [
        "o.toml: optimize.space.train.lr.high: required (or give choices)",
        "o.toml: optimize.space.init.bogus: unknown key",
        "o.toml: optimize.space.model.hidden.low: not allowed with choices"]
    with pytest.raises(SpecError) as info:
        load_spec(text + '"train.seed" = {low = 0, high = 9}\n"optimize.batch" = {low = 1, '
                  'high = 8}', "o.toml")
    assert info.value.problems == [
        "o.toml: optimize.space.train.seed: cannot be searched (seeds are optimize.seeds)",
        "o.toml: optimize.space.optimize.batch: cannot be searched"]
    spec = load_spec(text + '[optimize.space.train]\nweight_decay = {low = 0.1, high = 2, '
                     'log = true}\nbatch_size = {low = 16, high = 64}', "o.toml")
    dims = spec.optimize.dims()
    assert set(dims) == {"train.weight_decay", "train.batch_size"}
    assert dims["train.batch_size"].is_int and not dims["train.weight_decay"].is_int
    with pytest.raises(SpecError) as info:
        load_spec(text + '"train.lr" = {low = 0.1, high = 1}', "o.toml",
                  ["optimize.censor_penalty=1", "optimize.seeds=[1, 1]"])
    assert info.value.problems == [
        "--set optimize.seeds=[1, 1]: optimize.seeds: must be a non-empty list of distinct "
        "non-negative integers",
        "--set optimize.censor_penalty=1: optimize.censor_penalty: must be > 1.0 (got 1)"]
