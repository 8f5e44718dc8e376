"""How well one number separates two groups: ROC-AUC by ranks, with a bootstrap interval."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["roc_auc", "bootstrap_auc", "BOOTSTRAP", "BOOTSTRAP_SEED"]

BOOTSTRAP = 2000  # resamples
BOOTSTRAP_SEED = 0


def roc_auc(scores: ArrayLike, labels: ArrayLike) -> float | None:
    """P(score of a random positive > score of a random negative), ties counted ½.

    The Mann–Whitney form: (Σ ranks of the positives − n₊(n₊ + 1)/2) / (n₊ n₋), with mean
    ranks for ties. None without both classes. 0.5 is no separation; below 0.5 the
    indicator is lower for the positives.
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):  # mean rank (1-based) over each run of ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i: j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def bootstrap_auc(scores: ArrayLike, labels: ArrayLike, n: int = BOOTSTRAP,
                  seed: int = BOOTSTRAP_SEED, level: float = 0.95
                  ) -> tuple[float, float] | None:
    """Percentile interval of the AUC over members resampled with replacement.

    Positives and negatives are resampled apart (each group keeps its size), so every
    resample has both classes. Seeded: the same members give the same interval.
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    pos, neg = s[y], s[~y]
    if pos.size == 0 or neg.size == 0:
        return None
    rng = np.random.default_rng(seed)
    labels_b = np.r_[np.ones(pos.size, bool), np.zeros(neg.size, bool)]
    values = []
    for _ in range(n):
        sample = np.r_[rng.choice(pos, pos.size), rng.choice(neg, neg.size)]
        auc = roc_auc(sample, labels_b)
        assert auc is not None
        values.append(auc)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)
