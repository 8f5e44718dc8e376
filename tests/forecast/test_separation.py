"""ROC-AUC against pairs counted by hand, and its bootstrap interval."""

from __future__ import annotations

import itertools

import numpy as np

from grokexp.forecast.separation import bootstrap_auc, roc_auc


def pair_count(scores, labels):
    """From the definition: the share of (positive, negative) pairs ordered right, ties ½."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0
               for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_hand_computed_cases():
    # positives 0.35, 0.8 against negatives 0.1, 0.4: 0.35 beats 0.1 only, 0.8 both: 3/4
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == 0.75
    assert roc_auc([1.0, 1.0], [True, False]) == 0.5
    assert roc_auc([0.0, 1.0], [True, False]) == 0.0
    assert roc_auc([1.0, 2.0], [True, True]) is None


def test_ranks_agree_with_pair_counting_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(20):
        scores = rng.integers(0, 5, size=12).astype(float)  # many ties
        labels = rng.random(12) < 0.5
        if labels.all() or not labels.any():
            continue
        assert abs(roc_auc(scores, labels) - pair_count(scores, labels)) < 1e-12


def test_bootstrap_interval_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(0)
    scores = np.r_[rng.normal(1, 1, 15), rng.normal(0, 1, 15)]
    labels = np.r_[np.ones(15, bool), np.zeros(15, bool)]
    auc = roc_auc(scores, labels)
    lo, hi = bootstrap_auc(scores, labels, n=500)
    assert lo < auc < hi and 0 <= lo and hi <= 1
    assert bootstrap_auc(scores, labels, n=500) == (lo, hi)
    assert bootstrap_auc([0, 1, 2, 3], [False, False, True, True], n=200) == (1.0, 1.0)
    assert bootstrap_auc([0, 1], [True, True]) is None
