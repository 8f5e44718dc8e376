"""`grokexp reproduce --suite beyond`: the paper's indicators on other models, through the
paper's own measures given each beyond spec's members in the role they read. Hand-made member
series (whose onsets and peaks follow from their definition) for the mapping and the Fourier
onsets; a tiny-budget run of the suite through the command, read back from a real store."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from grokexp.cli import main
from grokexp.paper.beyond import (
    BEYOND_SPECS,
    INDICATORS,
    MODELS,
    VERDICTS,
    BeyondModel,
    evaluate_beyond,
    fourier_onsets,
    grokking_epochs,
    roles,
)
from grokexp.series import MemberSeries, MemberSnapshots

SPECS = Path(__file__).resolve().parents[2] / "specs"
VERDICT = re.compile(rf"^({'|'.join(VERDICTS)}|held in \d+ of \d+ seeds)$")


def _ramp(start: int, end: int, lo: float, hi: float, last: int = 3000
          ) -> tuple[list[int], list[float]]:
    """Every 10 epochs: lo until ``start``, linear to hi at ``end``, hi after."""
    epochs = list(range(0, last + 1, 10))
    return epochs, [lo if e <= start else hi if e >= end else lo + (hi - lo) * (e - start)
                    / (end - start) for e in epochs]


def _member(split: int, **columns) -> tuple[dict, MemberSnapshots]:
    """Train 0.02 → 1 over epochs 100–200, test over 1000–1450 (grok epoch 1430)."""
    cols = {"train_acc": _ramp(100, 200, 0.02, 1.0), "test_acc": _ramp(1000, 1450, 0.02, 1.0),
            **columns}
    series = MemberSeries(columns=cols, budget=3000)
    series.train_grok_epoch, series.test_grok_epoch = 200, 1430  # first ≥ 0.95 of each ramp
    return {"train.seed": split, "train.split_seed": split}, MemberSnapshots(series)


def test_grok_epochs_and_delays_are_ranges_over_members_with_the_censored_counted():
    """Beside each model: when its members memorised and generalised, so that a row about
    indicators can be read against whether there was any delay to foretell. A member whose
    test accuracy missed its budget is counted as censored, not dropped."""
    group = [_member(0), _member(1), _member(2), _member(3)]
    group[1][1].series.train_grok_epoch, group[1][1].series.test_grok_epoch = 150, 1900
    group[2][1].series.test_grok_epoch = None  # censored at its budget of 3000
    group[3][1].series.train_grok_epoch = None  # never memorised, yet generalised
    assert grokking_epochs(group) == ("train at 150–200 (1 censored), test at 1430–1900 "
                                      "(1 censored), delay 1230–1750 (2 censored) epochs "
                                      "(4 members)")
    group[0][1].series.test_grok_epoch = 3100  # past its budget: censored, as the claims say
    assert "test at 1430–1900 (2 censored)" in grokking_epochs(group)


def _onset_reference(epochs, values, window: int = 5, share: float = 0.5):
    """The onset from its definition: the trailing mean of five; the first epoch at which it
    has made half its change from its first to its last value."""
    x = np.asarray(values, dtype=float)
    s = np.array([x[max(0, i - window + 1): i + 1].mean() for i in range(len(x))])
    progress = (s - s[0]) / (s[-1] - s[0])
    return int(epochs[int(np.argmax(progress >= share))])


def _mc(peak: int) -> tuple[list[int], list[float]]:
    epochs = list(range(0, 3001, 100))
    return epochs, [1e-8 + 1e-4 * np.exp(-(((e - peak) / 150) ** 2)) for e in epochs]


def test_roles_put_each_spec_in_the_place_of_the_paper_spec_it_stands_for() -> None:
    model = BeyondModel("m", "beyond_x", "beyond_x_scale")
    base, scaled = [_member(0)], [_member(1)]
    assert roles(model, {"beyond_x": base, "beyond_x_scale": scaled, "other": [_member(2)]}) \
        == {"baseline": base, "scale_sweep": scaled}
    assert roles(model, {"beyond_x": base}) == {"baseline": base}
    assert roles(BeyondModel("m", "beyond_x"), {"beyond_x": base, "beyond_x_scale": scaled}) \
        == {"baseline": base}
    # every suite spec has a file under specs/beyond/ whose name is the spec's
    for name in BEYOND_SPECS:
        text = (SPECS / "beyond" / f"{name}.toml").read_text(encoding="utf-8")
        assert f'name = "{name}"' in text and "split_seeds = [0, 1, 2]" in text


def test_rows_measure_with_the_papers_checks_and_say_what_does_not_apply() -> None:
    """The transformer's members with an MC variance peak inside the rise (epoch 1300; the
    rise runs from the onset 1250 to the grok epoch 1430) and no ReLU zero-output series."""
    members = [_member(s, mc_dropout_acc_var=_mc(1300)) for s in range(3)]
    rows = evaluate_beyond({"beyond_transformer": members})
    assert len(rows) == len(MODELS) * len(INDICATORS)
    assert all(VERDICT.match(r.verdict) for r in rows), [r.verdict for r in rows]
    mine = {r.claim: r for r in rows if r.model == MODELS[0].label}
    peak = mine[INDICATORS[0].short]
    assert peak.verdict == "held" and "variance peak at epoch 1300" in peak.measured
    assert "test rise from 1250 (its onset) to 1430" in peak.measured
    assert peak.splits == "3" and peak.censored == "0 of 3"
    inactive = mine["inactive-neuron share falls, then rises"]
    assert inactive.verdict == "does not apply" and "no ReLU site" in inactive.measured
    assert "zero_activation_frac" in inactive.measured and inactive.censored == "0 of 3"
    scale = mine["grokking delay grows linearly with init scale α"]
    assert scale.verdict == "not measured" and scale.splits == ""
    assert scale.measured == "its spec was not run"  # the transformer's α sweep
    # the one-hot MLP's specs did not run: its rows say so, with no number
    other = [r for r in rows if r.model == MODELS[1].label]
    assert {r.verdict for r in other} == {"not measured"}
    assert all(r.splits == r.censored == "" for r in other)
    assert {r.measured for r in other} == {"its spec was not run"}  # α sweep included
    (s5_scale,) = [r for r in rows if r.model == MODELS[2].label and "init scale" in r.claim]
    assert s5_scale.measured == "no init-scale sweep of this model in the suite"


def test_scale_sweep_role_fits_the_delay_line() -> None:
    """Delays 550, 750, 1150, 1550 at α = 1, 2, 4, 6: the line's slope is 200 epochs per α
    (np.polyfit here, the reference); the points lie on the line, so R² = 1."""
    members = []
    for alpha, test_grok in ((1.0, 750), (2.0, 950), (4.0, 1350), (6.0, 1750)):
        varied, record = _member(0)
        record.series.test_grok_epoch = test_grok
        members.append(({**varied, "init.scale": alpha}, record))
    rows = evaluate_beyond({"beyond_onehot_scale": members})
    (row,) = [r for r in rows if r.model == MODELS[1].label and "init scale" in r.claim]
    slope, _ = np.polyfit([1, 2, 4, 6], [550, 750, 1150, 1550], 1)
    assert row.verdict == "held" and f"fit slope {slope:.0f} epochs/α" in row.measured
    assert row.splits == "1" and row.censored == "0 of 4"


def test_fourier_onsets_against_the_test_accuracys_onset() -> None:
    restricted = _ramp(800, 990, 1.0, 0.1)  # falls: half-way (0.55) at 895, smoothed at 915
    excluded = _ramp(1000, 1190, 0.1, 1.0)  # rises: half-way at 1095
    varied, record = _member(0, fourier_restricted_loss=restricted,
                             fourier_excluded_loss=excluded)
    test = _onset_reference(*record.series.columns["test_acc"])
    falls = _onset_reference(restricted[0], [-v for v in restricted[1]]) - test
    rises = _onset_reference(*excluded) - test
    assert (falls, rises) == (920 - 1250, 1120 - 1250)  # the trailing mean lags by 20
    assert fourier_onsets([(varied, record)]) == (
        f"restricted loss falls {falls:+d} epochs, excluded loss rises {rises:+d} epochs from "
        "the test accuracy's onset (1 members; − is before)")
    assert fourier_onsets([_member(0)]) == "not logged"


def test_the_excluded_loss_rise_is_dated_from_its_lowest_point() -> None:
    """Nanda's excluded loss falls with the training loss first (4 → 0.5 over epochs
    100–300) and rises later (0.5 → 2 over 1100–1290): the onset is of that rise, dated on
    the series from its minimum; an onset over the whole series would date the first fall.
    A restricted loss that only rises has no fall to date."""
    epochs, first = _ramp(100, 300, 4.0, 0.5)
    _, later = _ramp(1100, 1290, 0.0, 1.5)
    excluded = [a + b for a, b in zip(first, later, strict=True)]
    low = int(np.argmin(excluded))  # the first epoch at 0.5
    rising = _ramp(800, 990, 0.1, 1.0)
    varied, record = _member(0, fourier_restricted_loss=rising,
                             fourier_excluded_loss=(epochs, excluded))
    test = _onset_reference(*record.series.columns["test_acc"])
    rises = _onset_reference(epochs[low:], excluded[low:]) - test
    assert _onset_reference(epochs, excluded) < 1000 < rises + test  # whole series: the fall
    assert fourier_onsets([(varied, record)]) == (
        f"restricted loss falls 1 missing epochs, excluded loss rises {rises:+d} epochs from "
        "the test accuracy's onset (1 members; − is before)")


TINY = {  # the probes each claim reads, on the transformer; the one-hot MLP with none
    "beyond_transformer": '[model]\narchitecture = "transformer"\nd_model = 8\nn_heads = 2\n'
                          'd_mlp = 16\n[metrics]\nevery = 2\nmc_dropout_every = 2\n'
                          'mc_samples = 2\ndrc_epochs = [0, 4]\ndrc_rates = [0.0, 0.2]\n'
                          'drc_samples = 1\n',
    "beyond_transformer_scale": '[model]\narchitecture = "transformer"\nd_model = 8\n'
                                'n_heads = 2\nd_mlp = 16\n[metrics]\nevery = 2\n'
                                'mc_dropout = false\ndrc = false\nfourier = false\n[sweep]\n'
                                '"init.scale" = [2.0]\n',
    "beyond_onehot_mlp": '[model]\narchitecture = "onehot_mlp"\nhidden = [8, 8]\n[metrics]\n'
                         'every = 2\nmc_dropout = false\ndrc = false\n',
    "beyond_onehot_scale": '[model]\narchitecture = "onehot_mlp"\nhidden = [8, 8]\n[metrics]\n'
                           'every = 2\nmc_dropout = false\ndrc = false\n[sweep]\n'
                           '"init.scale" = [2.0]\n',
    "beyond_onehot_s5": '[model]\narchitecture = "onehot_mlp"\nhidden = [8, 8]\n[metrics]\n'
                        'every = 2\nmc_dropout = false\ndrc = false\n',
    **{name: '[model]\narchitecture = "transformer"\nd_model = 8\nn_heads = 2\nd_mlp = 16\n'
              '[metrics]\nevery = 2\nmc_dropout = false\ndrc = false\n'
       for name in ("beyond_transformer_s5", "beyond_transformer_s5_40")},
}
# s5 has no modulus and 14,400 pairs: large batches keep its four epochs short
TASK = {name: ('[task]\noperation = "s5"\n', 4096)
        for name in ("beyond_onehot_s5", "beyond_transformer_s5", "beyond_transformer_s5_40")}


def test_the_suite_runs_and_writes_a_row_per_model_and_claim(tmp_path, tracking_uri) -> None:
    folder = tmp_path / "specs" / "beyond"
    folder.mkdir(parents=True)
    for name, body in TINY.items():
        task, batch = TASK.get(name, ("[task]\nmodulus = 7\n", 8))
        (folder / f"{name}.toml").write_text(
            f'name = "{name}"\n{task}[train]\nepochs = 4\nlr = 1e-2\n'
            f'batch_size = {batch}\n[tracking]\nlog_model = false\n{body}')  # no export: fast
    out = tmp_path / "out"
    args = ["reproduce", "--suite", "beyond", "--specs-dir", str(tmp_path / "specs"), "--out",
            str(out), "--tracking-uri", tracking_uri]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    table = (out / "claims-beyond.md").read_text()
    rows = [[c.strip() for c in line.strip("|").split(" | ")]
            for line in table.split("\n\n")[0].splitlines()[2:]]
    assert len(rows) == len(MODELS) * len(INDICATORS)
    assert {(r[0], r[1].rsplit(" (", 1)[0]) for r in rows} == {
        (m.label, i.short) for m in MODELS for i in INDICATORS}
    assert all(VERDICT.match(r[5]) for r in rows), [r[5] for r in rows]
    unmeasured = [(r[0], r[5]) for r in rows if r[3] != "3"]  # others cover three splits
    # no α sweep of either model on s5 in the suite
    assert unmeasured == [(m.label, "not measured") for m in MODELS[2:]]
    for s5 in MODELS[2:]:
        s5_rows = {r[1].rsplit(" (", 1)[0]: r for r in rows if r[0] == s5.label}
        assert s5_rows["codiagonal cosine structure before the test rise"][5] == "does not apply"
    fourier = table.split("\n\n")[1].splitlines()[2:]  # one line per model, either way
    assert [line.split(" | ")[0].strip("| ") for line in fourier] == [m.label for m in MODELS]
    assert all(line.endswith(("| not logged |", "− is before) |")) for line in fourier)

    client = MlflowClient(tracking_uri=tracking_uri)
    for name in BEYOND_SPECS:
        experiment = client.get_experiment_by_name(name)
        children = [r for r in client.search_runs([experiment.experiment_id])
                    if "mlflow.parentRunId" in r.data.tags]
        pairs = {(r.data.params["train.seed"], r.data.params["train.split_seed"])
                 for r in children}
        assert pairs == {("0", "0"), ("1", "1"), ("2", "2")}, name  # init and split differ
    again = CliRunner().invoke(main, [*args[:5], "--out", str(tmp_path / "o2"), "--reuse",
                                      "--tracking-uri", tracking_uri])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "o2" / "claims-beyond.md").read_text() == table
    bad = CliRunner().invoke(main, ["reproduce", "--suite", "beyond", "--only", "baseline"])
    assert bad.exit_code == 2 and "not a beyond spec" in bad.output
