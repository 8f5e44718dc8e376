"""Claims over seeds and splits: reproduce gives every paper spec's members their own init
seed and split seed (unless a spec fixes its splits), the claims table counts the splits a
row covers, and Fig. 9's row dates memorisation and generalisation per case from the members'
series (hand-made step series: the grok epoch is the step's epoch by definition)."""

from __future__ import annotations

import html
import math
from collections import defaultdict
from pathlib import Path

import pytest

from grokexp.paper.claims import evaluate_claims
from grokexp.paper.reproduce import PAPER_SPECS, gallery_html, paper_members
from grokexp.series import MemberSeries, MemberSnapshots

SPECS = Path(__file__).resolve().parents[2] / "specs"
INTERVALS = [(-0.2, 0.2), (0.4, 0.8), (1.2, 1.6), (1.6, 2.0)]


@pytest.mark.parametrize("name", PAPER_SPECS)
def test_every_paper_spec_runs_three_members_per_point_with_their_own_splits(name) -> None:
    _, members = paper_members(name, (SPECS / f"{name}.toml").read_text(encoding="utf-8"),
                               quick=False)
    points = defaultdict(list)
    for m in members:
        key = repr({k: v for k, v in m.varied.items() if not k.startswith("train.")})
        points[key].append((m.spec.train.seed, m.spec.train.split_seed))
    for pairs in points.values():
        assert pairs == [(0, 0), (1, 1), (2, 2)]  # init seed and split seed both differ


def test_a_spec_that_fixes_its_split_keeps_it() -> None:
    text = 'name = "fixed"\n[sweep]\nseeds = [0, 1, 2]\nsplit_seeds = [4, 4, 4]\n'
    _, members = paper_members("fixed", text, quick=False)
    assert [(m.spec.train.seed, m.spec.train.split_seed) for m in members] == \
        [(0, 4), (1, 4), (2, 4)]
    _, quick = paper_members("fixed", text, quick=True)
    assert [(m.spec.train.seed, m.spec.train.split_seed) for m in quick] == [(0, 4)]
    _, plain = paper_members("plain", 'name = "plain"\n', quick=True)
    assert [(m.spec.train.seed, m.spec.train.split_seed) for m in plain] == [(0, 0)]


def _steps(train: int, test: float, last: int = 3000, top: float = 1.0) -> MemberSnapshots:
    """Train accuracy 0.02 → 1 at epoch ``train``; test accuracy 0.02 → ``top`` at epoch
    ``test`` (infinite: never, censored). Grok epochs at 0.95: the step epochs (or none)."""
    epochs = list(range(0, last + 1, 10))
    train_acc = [0.02 if e < train else 1.0 for e in epochs]
    test_acc = [0.02 if e < test else top for e in epochs]
    series = MemberSeries(columns={"train_acc": (epochs, train_acc),
                                   "test_acc": (epochs, test_acc)}, budget=last)
    series.train_grok_epoch = train
    series.test_grok_epoch = None if math.isinf(test) else int(test)
    return MemberSnapshots(series)


def test_splits_column_counts_distinct_split_seeds_per_spec() -> None:
    baseline = [({"train.seed": s, "train.split_seed": s}, _steps(200, 1500)) for s in range(3)]
    relu = [({"train.seed": s, "train.split_seed": 0}, _steps(200, 1500)) for s in range(3)]
    claims = {c.key: c for c in evaluate_claims({"baseline": baseline,
                                                 "embedding_relu": relu})}
    assert claims["drc"].splits == "3"
    assert claims["relu"].splits == "baseline 3, embedding_relu 1"
    assert claims["frozen"].splits == ""  # not run
    page = gallery_html([], list(claims.values()), quick=False)
    assert "<th>splits</th>" in page
    assert f"<td>{html.escape(claims['relu'].splits)}</td>" in page


def test_fig9_reports_memorisation_and_generalisation_per_case_and_censored() -> None:
    # (train grok, test grok) per seed and case; case 3 generalises for one split only
    cases = [[(200, 1300), (200, 1400), (210, 1500)], [(150, 900), (150, 1000), (160, 1100)],
             [(400, 900), (410, 950), (420, 1000)], [(900, math.inf), (950, math.inf),
                                                     (1000, 2500)]]
    members = []
    for (low, high), seeds in zip(INTERVALS, cases, strict=True):
        for seed, (train, test) in enumerate(seeds):
            members.append(({"init": {"scheme": "uniform", "low": low, "high": high},
                             "train.seed": seed, "train.split_seed": seed},
                            _steps(train, test, 6000)))
    (claim,) = [c for c in evaluate_claims({"shift_sweep": members}) if c.key == "shift_sweep"]
    text = claim.measured
    assert ("case 0 [-0.2, 0.2]: memorised at 200–210, generalised at 1300–1500 (0 of 3 "
            "censored at the budget), delay 1100–1290") in text
    assert "case 2 [1.2, 1.6]: memorised at 400–420, generalised at 900–1000 (0 of 3" in text
    assert ("case 3 [1.6, 2]: memorised at 900–1000, generalised at 2500 (2 of 3 censored "
            "at the budget)") in text
    assert text.endswith("case 0 median delay 1200; budget 6000 epochs, last evaluation at "
                         "6000")
    assert claim.splits == "3" and claim.censored == "2 of 12"
    # Case 3's third split generalised (test accuracy 1.0 ≥ 0.5): not damped on that split.
    assert claim.verdict == "held in 2 of 3 seeds"
