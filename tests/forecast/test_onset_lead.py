"""Onset + lead, the 40 % epoch and the Fourier forecasters on hand-made members whose answers
are worked out by hand (numpy only for medians)."""

from __future__ import annotations

import math

import numpy as np

from grokexp.forecast.history import early_epoch, member_from_points
from grokexp.forecast.onset_lead import onset_by
from grokexp.forecast.report import analyse, table_text
from grokexp.series import MemberSeries

EPOCHS = np.arange(0, 3001, 10)
BUDGET = 3000
STRUCT = "embedding_cos_structure"
LEAD = "onset + lead: " + STRUCT


def make(label: str, grok: int | None, step_at: int | None,
         extra: dict[str, np.ndarray] | None = None) -> MemberSeries:
    """Test acc 0.1 → 1 at ``grok`` (never: None); the structure steps 0 → 1 at ``step_at``.

    A step at s is an onset at s + 20: the trailing mean of 5 values every 10 epochs first
    reaches 1/2 of the change when 3 of its 5 values have moved (3/5 ≥ 1/2, 2/5 < 1/2)."""
    test = np.where(EPOCHS >= grok, 1.0, 0.1) if grok is not None else np.full(EPOCHS.shape, 0.1)
    struct = (EPOCHS >= step_at).astype(float) if step_at is not None else np.zeros(EPOCHS.shape)
    series = {"test_acc": test, "train_acc": (EPOCHS >= 100).astype(float), STRUCT: struct,
              **(extra or {})}
    points = {k: dict(zip(EPOCHS.tolist(), v.tolist(), strict=True)) for k, v in series.items()}
    return member_from_points(label, points, BUDGET)


# (label, test grok epoch, structure step): onsets at step + 20
CASES = [("A", 900, 300), ("B", 1100, 350), ("C", 1000, 400), ("D", 2500, 1500),
         ("E", 1500, 700), ("never", None, None)]
ONSET = {k: s + 20 for k, _, s in CASES if s is not None}
GROK = {k: g for k, g, _ in CASES if g is not None}
LEADS = {k: GROK[k] - ONSET[k] for k in GROK}  # A 580, B 730, C 580, D 980, E 780


def population() -> list[MemberSeries]:
    return [make(*c) for c in CASES]


def others_lead(label: str) -> float:
    return float(np.median([lead for k, lead in LEADS.items() if k != label]))


def test_the_causal_onset_is_the_first_epoch_half_the_given_change_is_covered():
    e = np.arange(0, 100, 10)
    v = [0, 0, 0, 1, 2, 3, 4, 4, 4, 4]
    # trailing means of 5: 0, 0, 0, .25, .6, 1.2, 2, 2.8, 3.4, 3.8
    assert onset_by(e, v, math.inf, 2.0) == 50  # 1.2 / 2 ≥ 0.5 (0.6 / 2 < 0.5)
    assert onset_by(e, v, 40, 2.0) is None  # by epoch 40 only 0.6 / 2: not yet
    assert onset_by(e, v, math.inf, 4.0) == 60  # 2 / 4 ≥ 0.5
    assert onset_by(e, v, math.inf, 8.0) is None  # 3.8 / 8 < 0.5: never half that far
    assert onset_by(e, [-x for x in v], math.inf, -2.0) == 50  # a fall: the same rule
    assert onset_by(e, v, math.inf, 0.0) is None


def test_onset_plus_the_others_median_lead_at_20_and_40_percent():
    report = analyse(population())
    by = {m.label: m for m in report.members}
    # at 20 % (epoch 600) A, B, C have their onsets: onset + the others' median lead
    for k in ("A", "B", "C"):
        assert by[k].early_epoch == 600
        assert by[k].forecasts[LEAD] == ONSET[k] + others_lead(k)
    assert by["A"].forecasts[LEAD] == 320 + np.median([730, 580, 980, 780])  # = 1075
    # D and E have none by 600: "not yet" = max(600 + the others' median lead, the median grok
    # epoch of the others that generalised and were also not yet at their 600)
    assert by["D"].forecasts[LEAD] == max(600 + others_lead("D"), 1500)  # E only: 1500
    assert by["E"].forecasts[LEAD] == max(600 + others_lead("E"), 2500)  # D only: 2500
    # at 40 % (epoch 1200) E's onset (720) is known; D's (1520) is not, and no other is late
    assert by["E"].late_epoch == 1200
    assert by["E"].late_forecasts[LEAD] == 720 + others_lead("E")
    assert by["D"].late_forecasts[LEAD] == 1200 + others_lead("D")
    rows = {(f.method, f.share): f for f in report.forecasts}
    early, late = rows[LEAD, 0.2], rows[LEAD, 0.4]
    # MdAPE at 20 %: all five generalised after 600
    want = [abs(by[k].forecasts[LEAD] - GROK[k]) / GROK[k] for k in GROK]
    assert early.held_out == 5 and abs(early.mdape - float(np.median(want))) < 1e-12
    assert early.not_yet == 3  # D, E and "never" (its structure never moves)
    # at 40 %: A, B, C generalised before 1200 and are not judged
    want = [abs(by[k].late_forecasts[LEAD] - GROK[k]) / GROK[k] for k in ("D", "E")]
    assert late.held_out == 2 and abs(late.mdape - float(np.median(want))) < 1e-12
    assert late.not_yet == 2  # D and "never"


def test_leave_one_out_excludes_the_member_itself():
    """Moving A's own grok epoch (so its own lead) must not move A's forecast; it moves the
    others' (their median lead includes A's)."""
    base = {m.label: m.forecasts[LEAD] for m in analyse(population()).members}
    moved = [make("A", 2900, 300), *(make(*c) for c in CASES[1:])]
    after = {m.label: m.forecasts[LEAD] for m in analyse(moved).members}
    assert after["A"] == base["A"]
    assert after["B"] != base["B"]  # A's lead 580 → 2580 enters B's median


def test_the_40_percent_epoch_is_the_last_evaluation_at_or_before_it():
    m = make("A", 900, 300)
    assert early_epoch(m, 0.4) == 1200 and early_epoch(m, 0.2) == 600
    sparse = member_from_points("s", {"test_acc": {e: 0.0 for e in range(0, 3001, 70)}}, 3000)
    assert early_epoch(sparse, 0.4) == 1190  # 17 × 70; the next, 1260, is past 1200
    assert early_epoch(sparse, 0.2) == 560  # 8 × 70


def test_fourier_forecasters_when_logged_and_when_not():
    absent = analyse(population())
    rows = {f.method: f for f in absent.forecasts if f.share == 0.2}
    for method in ("fourier_gini", "onset + lead: fourier_restricted_loss"):
        assert rows[method].missing == 6 and rows[method].held_out == 0
        assert rows[method].mdape is None
    text = table_text(absent)
    assert "fourier_gini" in text and text.count("not logged") >= 2
    # grok epochs 900 … 2500 among the five that generalised: 2500 / 900 = 2.78
    assert "5 rose, 5 generalised within the budget (test grok epoch 900–2500, 2.8× apart)" in text
    # logged: the restricted loss falls 2 → 1 with a step 50 epochs after the structure's,
    # fourier_gini rises linearly to 1 at the member's grok epoch (slope 1/2000 for all)
    members = []
    for label, grok, step_at in CASES:
        on = step_at + 50 if step_at is not None else 10**9
        g = grok if grok is not None else 10**9
        extra = {"fourier_restricted_loss": np.where(EPOCHS >= on, 1.0, 2.0),
                 "fourier_gini": 1 + (EPOCHS - g) / 2000.0}
        members.append(make(label, grok, step_at, extra))
    report = analyse(members)
    by = {m.label: m for m in report.members}
    method = "onset + lead: fourier_restricted_loss"
    # a fall of 1 found at step + 70; leads grok − (step + 70): the same rule as a rise
    leads = {k: GROK[k] - (s + 70) for k, _, s in CASES if s is not None}
    assert by["A"].forecasts[method] == 370 + np.median([v for k, v in leads.items() if k != "A"])
    # the gini line reaches the others' level (1: their value at their grok epoch) exactly at
    # the grok epoch, and the others' calibration ratio is 1 (a centred mean of 5 on a line
    # is the line, up to rounding: 1e-6 epochs)
    gini = next(f for f in report.forecasts if f.method == "fourier_gini" and f.share == 0.2)
    assert gini.held_out == 5 and gini.mdape < 1e-9
    assert abs(by["D"].forecasts["fourier_gini"] - 2500) < 1e-6
