"""`grokexp reproduce` on tiny stand-ins of the paper specs, the paper specs themselves, and
every claim check on synthetic histories: one that must hold, one that must not (often one the
old, weaker check would have passed), and a censored seed (test accuracy never reaches 0.95).
Onsets are grokexp.grokking's: where a series' trailing mean of five has made half its change."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from grokexp.cli import main
from grokexp.engine.init import init_member
from grokexp.engine.sweep import expand_members
from grokexp.grokking import grok_epochs, onset
from grokexp.paper.claim_rules import (
    CENSORED,
    grok_epoch,
    grokking_delay,
    is_censored,
    rise_window,
    seeds_median,
)
from grokexp.paper.claims import CLAIMS, evaluate_claims
from grokexp.paper.reproduce import PAPER_SPECS
from grokexp.series import MemberSeries, MemberSnapshots
from grokexp.spec.io import load_spec

SPECS = Path(__file__).resolve().parents[2] / "specs"

TINY = """
name = "{name}"
description = "tiny {name}"
[task]
modulus = 7
[model]
embedding_dim = 8
hidden = 16
[train]
epochs = 20
lr = 1e-2
batch_size = 8
[metrics]
every = 5
mc_samples = 3
drc_rates = [0.0, 0.2]
drc_samples = 1
{extra}
"""
# constant_rest as the paper spec has it: no dropout probes; a two-point sweep for a parent run
CONSTANT_REST_EXTRA = """mc_dropout = false
drc = false
[sweep]
"train.lr" = [1e-2, 2e-2]
"""
PER_RUN = ["accuracy", "fig11_inactive", "fig3_cosine", "fig4_histograms", "fig6_mean_std",
           "fig7_embedding_histograms", "fourier_progress"]
EXPECTED_FIGURES = sorted(
    [f"baseline/member_0/figures/{n}.png" for n in [*PER_RUN, "fig1_mc_dropout", "fig2_drc"]]
    + [f"constant_rest/member_0/figures/{n}.png" for n in PER_RUN]
    + [f"constant_rest/sweep/figures/{n}.png" for n in ("accuracy_overlay", "curves_by_group")])


def _rows(markdown: str) -> dict[str, list[str]]:
    """The claims table of claims.md: statement → [figure, measured, splits, censored,
    verdict]."""
    out = {}
    for line in markdown.split("\n\n")[0].splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        out[cells[0]] = cells[1:]
    return out


def test_reproduce_quick_writes_gallery_and_reuse_rebuilds_it(tmp_path, tracking_uri) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "baseline.toml").write_text(TINY.format(name="baseline", extra=""))
    (specs / "constant_rest.toml").write_text(TINY.format(name="constant_rest",
                                                         extra=CONSTANT_REST_EXTRA))
    out = tmp_path / "gallery"
    args = ["reproduce", "--quick", "--only", "baseline", "--only", "constant_rest",
            "--specs-dir", str(specs), "--out", str(out), "--tracking-uri", tracking_uri]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    index = (out / "index.html").read_text()
    shown = sorted(src.split("'")[0] for src in index.split("<img src='")[1:])
    assert shown == EXPECTED_FIGURES  # exactly the figures these runs' diagnostics call for
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == EXPECTED_FIGURES
    assert index.count("<tr class=") == len(CLAIMS)

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("constant_rest")
    runs = client.search_runs([experiment.experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    finals = sorted(client.get_metric_history(r.info.run_id, "train_acc")[-1].value
                    for r in children)
    assert len(finals) == 2
    claims_md = (out / "claims.md").read_text()
    rows = _rows(claims_md)
    assert len(rows) == len(CLAIMS)
    by_key = {c.key: rows[c.statement] for c, *_ in CLAIMS}
    span = (f"{finals[0]:.2f}" if f"{finals[0]:.2f}" == f"{finals[1]:.2f}"
            else f"{finals[0]:.2f}–{finals[1]:.2f}")
    figure, measured, splits, censored, verdict = by_key["const_rest"]
    assert splits == "1"  # quick: one seed/split pair per grid point, split seed 0
    assert measured == f"final train acc {span}"  # the store's values, not a placeholder
    assert verdict == ("held" if finals[1] < 0.5 else "not held" if finals[0] >= 0.5
                       else "held in 1 of 2 seeds")
    tests = [client.get_metric_history(r.info.run_id, "test_acc") for r in children]
    assert censored == f"{sum(max(m.value for m in t) < 0.95 for t in tests)} of 2"
    for key in ("scale_delay", "shift_sweep", "embedding_shift", "frozen"):
        assert by_key[key][1:] == ["", "", "", "not measured"], key  # their specs were not run
    assert by_key["mc_peak"][4] != "not measured"  # the baseline logged MC dropout
    commit = parent.data.tags.get("mlflow.source.git.commit", "")
    seconds = float(parent.data.tags["grokexp.reproduce_seconds"])
    assert 0 < seconds < 600
    assert (f"| constant_rest | {parent.info.run_id} | 2 | {seconds:.0f} | "
            f"{commit[:12] or 'unknown'} |") in claims_md
    assert "reproduce: constant_rest: 2 member(s) in" in result.output

    count = len(client.search_runs([e.experiment_id for e in client.search_experiments()]))
    experiments = sorted(e.name for e in client.search_experiments())
    again = CliRunner().invoke(main, [*args[:-4], "--out", str(tmp_path / "g2"), "--reuse",
                                      "--specs-dir", str(specs), "--tracking-uri", tracking_uri])
    assert again.exit_code == 0, again.output
    assert len(client.search_runs([e.experiment_id for e in client.search_experiments()])) \
        == count  # nothing trained
    # every paper spec: those without runs are skipped, and no empty experiment is made
    every = CliRunner().invoke(main, ["reproduce", "--quick", "--reuse", "--specs-dir",
                                      str(specs), "--out", str(tmp_path / "g3"),
                                      "--tracking-uri", tracking_uri])
    assert every.exit_code == 0, every.output
    assert "reproduce: scale_sweep: no runs in" in every.output
    assert sorted(e.name for e in client.search_experiments()) == experiments
    assert (tmp_path / "g2" / "claims.md").read_text() == claims_md
    bad = CliRunner().invoke(main, ["reproduce", "--only", "nope", "--out", str(out)])
    assert bad.exit_code == 2 and "not a paper spec" in bad.output


# --- the paper specs ---------------------------------------------------------------------------

def _members(name: str):
    spec = load_spec((SPECS / f"{name}.toml").read_text(encoding="utf-8"), f"{name}.toml")
    assert spec.name == name  # reproduce --reuse finds a spec's runs by its experiment name
    return spec, expand_members(spec, name)


@pytest.mark.parametrize("name", PAPER_SPECS)
def test_every_paper_spec_loads_under_its_own_name(name: str) -> None:
    spec, members = _members(name)
    assert members
    # the claims read each member's own grok threshold; the paper's is 0.95 in every spec
    assert spec.metrics.grok_threshold == 0.95


INTERVALS = [(-0.2, 0.2), (0.4, 0.8), (1.2, 1.6), (1.6, 2.0)]


def test_fig9_spec_shifts_every_layer_weights_and_biases() -> None:
    spec, members = _members("shift_sweep")
    assert spec.train.epochs >= 4500  # a plain loop generalised case 2 at epoch 4400
    assert len(members) == 4
    for member, (low, high) in zip(members, INTERVALS, strict=True):
        params = init_member(member.spec)
        assert {"embedding", "hidden.0.weight", "hidden.0.bias", "output.weight",
                "output.bias"} <= set(params)
        for name, tensor in params.items():
            assert low <= float(tensor.min()) and float(tensor.max()) <= high, name


def test_embedding_shift_spec_shifts_the_embedding_only() -> None:
    _, members = _members("embedding_shift_sweep")
    assert len(members) == 4
    for member, (low, high) in zip(members, INTERVALS, strict=True):
        params = init_member(member.spec)
        assert low <= float(params["embedding"].min()) <= float(params["embedding"].max()) \
            <= high
        for name in ("hidden.0.weight", "output.weight"):
            assert float(params[name].min()) < 0 < float(params[name].max()), name  # Xavier


# --- synthetic histories -----------------------------------------------------------------------

def _ramp(start: int, end: int, lo: float, hi: float, last: int = 3000, every: int = 10
          ) -> tuple[list[int], list[float]]:
    """lo until ``start``, linear to hi at ``end``, hi after."""
    epochs = list(range(0, last + 1, every))
    return epochs, [lo if e <= start else hi if e >= end else lo + (hi - lo) * (e - start)
                    / (end - start) for e in epochs]


def _snapshots(columns: dict, budget: int) -> MemberSnapshots:
    """A member as read back from its run: its columns, grok epochs at 0.95, its budget."""
    series = MemberSeries(columns=columns, budget=budget)
    series.train_grok_epoch, series.test_grok_epoch = grok_epochs(columns, series.threshold)
    return MemberSnapshots(series)


def _run(test: tuple[int, int] | None = (1000, 1450), train: tuple[int, int] = (100, 200),
         test_top: float = 1.0, last: int = 3000, **series) -> MemberSnapshots:
    """Train rises over ``train``, test over ``test`` (None: stays at 0.02, censored)."""
    test_acc = _ramp(*test, 0.02, test_top, last) if test else _ramp(0, 1, 0.02, 0.02, last)
    return _snapshots({"train_acc": _ramp(*train, 0.02, 1.0, last), "test_acc": test_acc,
                       **series}, last)


def _delay(delay: float, **series) -> MemberSnapshots:
    """Train grok at epoch 200, test grok at 200 + delay (CENSORED: never)."""
    if math.isinf(delay):
        return _run(None, **series)
    return _run((190 + int(delay), 200 + int(delay)), last=max(3000, 400 + int(delay)),
                **series)


def _verdict(members, key: str):
    claim = next(c for c in evaluate_claims(members) if c.key == key)
    return claim


def test_shared_rules_onset_rise_censoring_and_median() -> None:
    r = _run()
    # 0.02 → 1.0 from epoch 1000 to 1450: the trailing mean of five at e is the ramp at e − 20,
    # half-way (0.51) at e − 20 = 1225, first evaluated at 1250; 0.95 first at epoch 1430
    assert rise_window(r) == (1250, 1430)
    assert grok_epoch(r, "train_acc") == 200 and grokking_delay(r) == 1230
    assert onset([0, 10], [0.5, 0.5]) is None  # no rise
    censored = _run(None)
    assert is_censored(censored) and not is_censored(r)
    assert grok_epoch(censored) == CENSORED and grokking_delay(censored) == CENSORED
    assert rise_window(censored) is None
    # A jump within one evaluation (0.02 at 1000, 1.0 at 1010): the trailing mean of five
    # passes half-way when three values are high (epoch 1030), after the grok epoch (1010);
    # the rise is then that one step and starts no later than it ends.
    assert rise_window(_run((1000, 1010))) == (1010, 1010)
    assert seeds_median([1000, CENSORED, CENSORED]) == CENSORED  # beyond the budget, not dropped
    assert seeds_median([1000, 1200, CENSORED]) == 1200
    assert seeds_median([1000, 1200]) == 1200  # the upper median: one seed's value


def _mc(peak: int, height: float = 1e-4) -> tuple[list[int], list[float]]:
    epochs = list(range(0, 3001, 100))
    return epochs, [1e-8 + height * math.exp(-(((e - peak) / 150) ** 2)) for e in epochs]


def test_mc_peak_inside_the_test_rise_after_it_and_censored() -> None:
    inside = _verdict({"baseline": [({}, _run(mc_dropout_acc_var=_mc(1300)))]}, "mc_peak")
    assert inside.verdict == "held", inside.measured
    assert "test rise from 1250 (its onset) to 1430" in inside.measured
    # Before the test accuracy's onset (half its change, at 1250): not in the rise.
    before = _verdict({"baseline": [({}, _run(mc_dropout_acc_var=_mc(1100)))]}, "mc_peak")
    assert before.verdict == "not held"
    # After the threshold: the old check (peak after train grok, > 5x, falls) would pass.
    after = _verdict({"baseline": [({}, _run(mc_dropout_acc_var=_mc(1800)))]}, "mc_peak")
    assert after.verdict == "not held" and "peak at epoch 1800" in after.measured
    rising = _verdict({"baseline": [({}, _run(mc_dropout_acc_var=_mc(3000)))]}, "mc_peak")
    assert rising.verdict == "not held"  # no fall after it: not a local maximum
    mixed = _verdict({"baseline": [({}, _run(mc_dropout_acc_var=_mc(1300))),
                                   ({}, _run(None, mc_dropout_acc_var=_mc(1300)))]}, "mc_peak")
    assert mixed.verdict == "held in 1 of 2 seeds" and mixed.censored == "1 of 2"
    assert "1 censored" in mixed.measured


def _drc(ratio: float) -> dict[str, tuple[list[int], list[float]]]:
    epochs = [0, 500, 1500, 2500]
    return {"drc_acc_r0": (epochs, [0.02, 0.02, 0.9, 1.0]),
            "drc_acc_r0.2": (epochs, [0.02, 0.02, 0.5, ratio])}


def test_drc_robust_holds_fails_and_censored() -> None:
    assert _verdict({"baseline": [({}, _run(**_drc(0.95)))]}, "drc").verdict == "held"
    assert _verdict({"baseline": [({}, _run(**_drc(0.5)))]}, "drc").verdict == "not held"
    censored = _verdict({"baseline": [({}, _run(None, **_drc(0.95)))]}, "drc")
    assert censored.verdict == "not held" and censored.censored == "1 of 1"


def test_cosine_onset_before_the_test_rise_onset() -> None:
    # half-way (0.485) when the ramp at e − 20 is: e − 20 = 775, first evaluated at 800
    early = _ramp(600, 950, 0.02, 0.95)
    held = _verdict({"baseline": [({}, _run(embedding_cos_structure=early))]}, "cosine")
    assert held.verdict == "held", held.measured
    assert "its onset at epoch 800, the test rise's onset at 1250" in held.measured
    # Half-way at 1300 + 20 (the ramp's middle, lagged): after the test accuracy's 1250.
    late = _ramp(1200, 1400, 0.02, 0.95)
    assert _verdict({"baseline": [({}, _run(embedding_cos_structure=late))]},
                    "cosine").verdict == "not held"
    censored = _verdict({"baseline": [({}, _run(None, embedding_cos_structure=early))]},
                        "cosine")
    assert censored.verdict == "not held" and censored.censored == "1 of 1"


def _stats(bc: float, low: float = -0.4, high: float = 0.4) -> dict:
    return {"embedding_bimodality": ([3000], [bc]), "embedding_peak_low": ([3000], [low]),
            "embedding_peak_high": ([3000], [high])}


def test_bimodal_final_state_with_a_censored_seed_counted() -> None:
    assert _verdict({"baseline": [({}, _run(**_stats(0.7)))]}, "bimodal").verdict == "held"
    assert _verdict({"baseline": [({}, _run(**_stats(0.4)))]}, "bimodal").verdict == "not held"
    assert _verdict({"baseline": [({}, _run(**_stats(0.7, -0.9, 0.9)))]},
                    "bimodal").verdict == "not held"  # peaks far from ±0.4
    censored = _verdict({"baseline": [({}, _run(None, **_stats(0.7)))]}, "bimodal")
    assert censored.verdict == "held" and censored.censored == "1 of 1"  # a final-state claim


def _scale(delays: dict[float, float]) -> list:
    return [({"init.scale": a}, _delay(d, embedding_std=_ramp(0, 300, 1.0, 0.5)))
            for a, d in delays.items()]


def test_scale_delay_linear_flat_and_censored() -> None:
    linear = _verdict({"scale_sweep": _scale({1.0: 500, 3.0: 900, 5.0: 1300, 7.0: 1700})},
                      "scale_delay")
    assert linear.verdict == "held" and "slope 200" in linear.measured
    flat = _verdict({"scale_sweep": _scale({1.0: 500, 3.0: 1500, 5.0: 400, 7.0: 600})},
                    "scale_delay")
    assert flat.verdict == "not held"
    censored = _verdict({"scale_sweep": _scale({1.0: 500, 3.0: 900, 5.0: 1300, 7.0: CENSORED})},
                        "scale_delay")
    assert censored.verdict == "not held" and censored.censored == "1 of 4"
    assert "7: 1 censored" in censored.measured


def test_compress_holds_fails_and_censored() -> None:
    def sweep(end: float, test=(1000, 1400)):
        return {"scale_sweep": [({"init.scale": 1.0}, _run()),
                                ({"init.scale": 7.0}, _run(test, embedding_std=_ramp(
                                    0, 300, 1.0, end)))]}
    assert _verdict(sweep(0.5), "compress").verdict == "held"
    assert _verdict(sweep(0.9), "compress").verdict == "not held"
    censored = _verdict(sweep(0.5, None), "compress")
    assert censored.verdict == "held" and censored.censored == "1 of 2"


def test_shifted_mean_returns_before_train_grok() -> None:
    def shifted(mean, **kw):
        return {"shifted": [({}, _run(embedding_mean=mean, **_stats(0.7), **kw))]}
    assert _verdict(shifted(_ramp(0, 180, 0.6, 0.05)), "shifted").verdict == "held"
    assert _verdict(shifted(_ramp(0, 1000, 0.6, 0.0)), "shifted").verdict == "not held"
    never = _verdict(shifted(_ramp(0, 180, 0.6, 0.05), train=(5000, 6000), test=None),
                     "shifted")
    assert never.verdict == "not held" and never.censored == "1 of 1"


def _sweep(key: str, cases: list[list[float]], censored_top: float = 0.02) -> list:
    """Four cases × seeds, by grokking delay; a CENSORED seed's test accuracy creeps up to
    ``censored_top`` by the end of its budget (0.02: it stays flat)."""
    out = []
    for (low, high), delays in zip(INTERVALS, cases, strict=True):
        for seed, d in enumerate(delays):
            record = _run((1000, 3000), test_top=censored_top) if math.isinf(d) else _delay(d)
            out.append(({key: {"scheme": "uniform", "low": low, "high": high},
                         "train.seed": seed}, record))
    return out


BASE = [1000.0, 1200.0, 1400.0]  # case 0: median 1200, worst 1400


def test_shift_sweep_against_the_median_of_case_0() -> None:
    damped = [CENSORED] * 3
    held = _verdict({"shift_sweep": _sweep("init", [BASE, [900, 1000, 1100], [600, 700, 800],
                                                      damped])}, "shift_sweep")
    assert held.verdict == "held", held.measured
    assert held.censored == "3 of 12" and "case 0 median delay 1200" in held.measured
    # Shorter than the worst case-0 seed (1400), not than its median: the old check passed it.
    worst = _verdict({"shift_sweep": _sweep("init", [BASE, [1100, 1300, 1250], [600, 700, 800],
                                                       damped])}, "shift_sweep")
    assert worst.verdict == "held in 1 of 3 seeds"
    # Case 3 rises to 0.9 by the end of its budget without reaching 0.95: not damped.
    undamped = _verdict({"shift_sweep": _sweep("init", [BASE, [900, 1000, 1100],
                                                          [600, 700, 800], damped], 0.9)},
                        "shift_sweep")
    assert undamped.verdict == "not held"


def test_shift_sweep_censored_seeds_count_as_beyond_the_budget() -> None:
    # Case 0 mostly censored: its median is beyond the budget, so case 1's 1100 is shorter
    # (dropping the censored seeds would make the median 1000 and fail every seed).
    censored_base = [1000.0, CENSORED, CENSORED]
    held = _verdict({"shift_sweep": _sweep("init", [censored_base, [1100] * 3, [600] * 3,
                                                      [CENSORED] * 3])}, "shift_sweep")
    assert held.verdict == "held" and held.censored == "5 of 12"
    # A censored case-1 seed is not shorter than anything.
    one = _verdict({"shift_sweep": _sweep("init", [BASE, [900, CENSORED, 1100], [600] * 3,
                                                     [CENSORED] * 3])}, "shift_sweep")
    assert one.verdict == "held in 2 of 3 seeds"


def test_fig9_and_its_embedding_control_read_only_their_own_spec() -> None:
    cases = [BASE, [900, 1000, 1100], [600, 700, 800], [CENSORED] * 3]
    embedding_only = _sweep("init.embedding", cases)
    wrong = _verdict({"shift_sweep": embedding_only}, "shift_sweep")
    assert wrong.verdict == "not measured" and "not this claim's spec" in wrong.measured
    control = _verdict({"embedding_shift_sweep": embedding_only}, "embedding_shift")
    assert control.verdict == "held"


def _layer(default: list[float], embedding: list[float], other: list[float]) -> list:
    init = [{}, {"embedding": {"scheme": "normal", "mean": 0.2, "std": 0.1}},
            {"hidden": {"scheme": "normal", "mean": 0.2, "std": 0.1},
             "output": {"scheme": "normal", "mean": 0.2, "std": 0.1}}]
    return [({"init": table, "train.seed": seed}, _delay(d))
            for table, delays in zip(init, (default, embedding, other), strict=True)
            for seed, d in enumerate(delays)]


def test_layer_shift_against_the_default_median() -> None:
    # 1300 > the default's median (1200), not its worst seed (1400): the old check failed it.
    held = _verdict({"layer_shift": _layer(BASE, [1300] * 3, [2000] * 3)}, "layer_shift")
    assert held.verdict == "held", held.measured
    assert _verdict({"layer_shift": _layer(BASE, [1100] * 3, [2000] * 3)},
                    "layer_shift").verdict == "not held"
    censored = _verdict({"layer_shift": _layer(BASE, [1300, CENSORED, 1300],
                                               [2000, 2000, CENSORED])}, "layer_shift")
    assert censored.verdict == "held" and censored.censored == "2 of 9"  # delayed beyond


def test_frozen_judged_on_test_accuracy() -> None:
    low = _verdict({"frozen_embedding": [({}, _run((500, 3000), test_top=0.2))]}, "frozen")
    assert low.verdict == "held" and low.censored == "1 of 1"  # no embedding stats needed
    # Censored (never 0.95) but rising to 0.8: grokking not suppressed.
    rising = _verdict({"frozen_embedding": [({}, _run((500, 3000), test_top=0.8))]}, "frozen")
    assert rising.verdict == "not held"
    grokked = _verdict({"frozen_embedding": [({}, _run())]}, "frozen")
    assert grokked.verdict == "not held" and grokked.censored == "0 of 1"


def test_relu_delayed_against_the_baseline_median() -> None:
    baseline = [({}, _delay(d)) for d in (1100, 1200, 1300)]  # test grok 1300/1400/1500
    later = [({}, _delay(d, **_stats(0.9))) for d in (1250, 1250, CENSORED)]
    held = _verdict({"baseline": baseline, "embedding_relu": later}, "relu")
    # 1450 is after the median (1400), not after the latest baseline seed (1500); the
    # censored seed counts as delayed, where the old check counted it as a failure.
    assert held.verdict == "held", held.measured
    assert held.censored == "baseline 0/3, embedding_relu 1/3"
    early = [({}, _delay(d, **_stats(0.9))) for d in (1150, 1150, 1150)]
    assert _verdict({"baseline": baseline, "embedding_relu": early},
                    "relu").verdict == "not held"
    unimodal = [({}, _delay(CENSORED, **_stats(0.4)))]
    assert _verdict({"baseline": baseline, "embedding_relu": unimodal},
                    "relu").verdict == "not held"


def test_constant_embedding_and_constant_rest() -> None:
    learns = _verdict({"constant_embedding": [({}, _run(None))]}, "const_emb")
    assert learns.verdict == "held" and learns.censored == "1 of 1"  # train acc, not test
    stuck = _snapshots({"train_acc": _ramp(0, 1, 0.04, 0.04),
                        "test_acc": _ramp(0, 1, 0.02, 0.02)}, 3000)
    assert _verdict({"constant_embedding": [({}, stuck)]}, "const_emb").verdict == "not held"
    assert _verdict({"constant_rest": [({}, stuck)]}, "const_rest").verdict == "held"
    assert _verdict({"constant_rest": [({}, _run())]}, "const_rest").verdict == "not held"


def test_inactive_falls_then_rises() -> None:
    epochs = list(range(0, 1000, 100))
    falls_rises = (epochs, [0.30, 0.10, 0.05, 0.04, 0.06, 0.09, 0.12, 0.14, 0.15, 0.15])
    flat = (epochs, [0.05] * 10)
    assert _verdict({"baseline": [({}, _run(zero_activation_frac=falls_rises))]},
                    "inactive").verdict == "held"
    assert _verdict({"baseline": [({}, _run(zero_activation_frac=flat))]},
                    "inactive").verdict == "not held"
    censored = _verdict({"baseline": [({}, _run(None, zero_activation_frac=falls_rises))]},
                        "inactive")
    assert censored.verdict == "held" and censored.censored == "1 of 1"


def test_a_claim_whose_spec_did_not_run_is_not_measured() -> None:
    claims = {c.key: c for c in evaluate_claims({"constant_rest": [({}, _run())]})}
    assert [k for k, c in claims.items() if c.verdict != "not measured"] == ["const_rest"]
    assert claims["frozen"].measured == "" and claims["frozen"].censored == ""


def test_censored_column_matches_is_censored_everywhere() -> None:
    """Every claim counts censored seeds with the one helper."""
    records = [_run(), _run(None), _run(None)]
    members = {name: [({"init.scale": 1.0} if name == "scale_sweep" else {}, r)
                      for r in records] for name in PAPER_SPECS}
    for claim in evaluate_claims(members):
        expected = "2 of 3" if len(claim.specs) == 1 else ", ".join(
            f"{s} 2/3" for s in claim.specs)
        assert claim.censored == expected, claim.key
