"""The early AUC with and without the frozen members, on a hand-made set whose AUCs are
counted pair by pair."""

from __future__ import annotations

import numpy as np

from grokexp.forecast.history import is_frozen, member_from_points
from grokexp.forecast.report import analyse, table_text
from grokexp.series import MemberSeries

EPOCHS = np.arange(0, 3001, 10)


def make(label: str, grok: int | None, score: float, frozen: bool = False) -> MemberSeries:
    test = np.where(EPOCHS >= grok, 1.0, 0.1) if grok is not None else np.full(EPOCHS.shape, 0.1)
    series = {"test_acc": test, "score": np.full(EPOCHS.shape, score)}
    points = {k: dict(zip(EPOCHS.tolist(), v.tolist(), strict=True)) for k, v in series.items()}
    m = member_from_points(label, points, 3000)
    m.varied = {"init.embedding.trainable": not frozen}
    return m


def pairwise_auc(pos: list[float], neg: list[float]) -> float:
    """P(positive > negative), ties ½: the definition, pair by pair."""
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_the_auc_without_frozen_members_leaves_them_out():
    pos = [0.9, 0.8, 0.3]  # generalise at 1000 (after the early epoch, 600)
    neg = [0.5, 0.2]  # never, trained
    frozen = [0.0, 0.1]  # never, frozen: the easy negatives
    members = ([make(f"p{i}", 1000, v) for i, v in enumerate(pos)]
               + [make(f"n{i}", None, v) for i, v in enumerate(neg)]
               + [make(f"f{i}", None, v, frozen=True) for i, v in enumerate(frozen)])
    row = {r.name: r for r in analyse(members).indicators}["score"]
    assert row.auc == pairwise_auc(pos, neg + frozen) and row.auc_members == 7  # 11/12
    assert row.auc_unfrozen == pairwise_auc(pos, neg) and row.auc_unfrozen_members == 5  # 5/6
    assert row.auc_unfrozen_low <= row.auc_unfrozen <= row.auc_unfrozen_high
    text = table_text(analyse(members))
    assert "7 member(s), 2 frozen" in text and "AUC unfrozen" in text
    assert "0.92 (" in text and "0.83 (" in text  # 11/12 and 5/6, both printed
    # given explicitly, the flags win over the varied values: nobody frozen, one AUC
    plain = analyse(members, frozen=[False] * 7)
    assert {r.name: r for r in plain.indicators}["score"].auc_unfrozen_members == 7
    assert "AUC unfrozen" not in table_text(plain) and "0 frozen" in table_text(plain)


def test_a_member_is_frozen_when_some_init_group_does_not_train():
    assert is_frozen({"init.embedding.trainable": False})
    assert is_frozen({"varied.init.hidden.trainable": "False"})  # a param, as MLflow keeps it
    assert is_frozen({"init.trainable": "false", "train.lr": "0.001"})
    assert not is_frozen({"init.embedding.trainable": "True", "init.scale": "1.0"})
    assert not is_frozen({})
