"""The diagnostics hook end to end: a tiny run into a real MLflow store, read back."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from grokexp.cli import main
from grokexp.diagnostics.schedule import checkpoint_targets, due


def _tiny(write_spec, extra: str = "") -> str:
    from conftest import TINY_DIAGNOSED

    return write_spec(TINY_DIAGNOSED + extra)


def _run(*args: str) -> dict:
    result = CliRunner().invoke(main, ["run", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def test_schedules() -> None:
    assert checkpoint_targets(3000, 10, 4) == [0, 10, 173, 3000]  # 173 = sqrt(10·3000)
    assert checkpoint_targets(100, 10, 0) == []
    assert due([0, 12, 20], -1, 0) == [0]
    assert due([0, 12, 20], 10, 15) == [12]


def test_run_logs_diagnostics_checkpoints_and_figures(write_spec, tracking_uri) -> None:
    out = _run(_tiny(write_spec), "--tracking-uri", tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    run_id = out["run_ids"][0]

    def steps(key: str) -> dict[int, float]:
        return {m.step: m.value for m in client.get_metric_history(run_id, key)}

    assert sorted(steps("embedding_cos_structure")) == [0, 5, 10, 15, 20]
    assert sorted(steps("inactive_neurons_pct")) == [0, 5, 10, 15, 20]
    assert sorted(steps("mc_dropout_acc_var")) == [0, 10, 20]
    for key in ("embedding_std", "hidden_weight_mean", "output_bias_std",
                "embedding_bimodality", "embedding_peak_low", "zero_activation_frac"):
        assert len(steps(key)) == 5, key
    drc0, test_acc = steps("drc_acc_r0"), steps("test_acc")
    assert sorted(drc0) == [0, 15]  # 12 is reached at the evaluation of epoch 15
    for step, value in drc0.items():
        assert abs(value - test_acc[step]) < 1e-6  # the DRC at rate 0 is the test accuracy
    assert sorted(steps("drc_acc_r0.5")) == [0, 15]
    arts = {a.path for a in client.list_artifacts(run_id, "checkpoints")}
    # log-spaced 0, 5, 20, plus the chosen epochs reached at 10 (histogram 7) and 15 (DRC 12)
    assert arts == {f"checkpoints/epoch_{e:06d}.pt" for e in (0, 5, 10, 15, 20)}
    figs = {a.path for a in client.list_artifacts(run_id, "figures")}
    assert {f"figures/{n}.png" for n in ("fig1_mc_dropout", "fig2_drc", "fig3_cosine",
            "fig4_histograms", "fig6_mean_std", "fig7_embedding_histograms",
            "fig11_inactive")} <= figs
    diag = {a.path for a in client.list_artifacts(run_id, "diagnostics")}
    assert diag == {"diagnostics/drc.csv", "diagnostics/cosine.csv"}


def test_metrics_switch_off(write_spec, tracking_uri) -> None:
    off = ["--set", "metrics.mc_dropout=false", "--set", "metrics.drc=false",
           "--set", "metrics.inactive_neurons=false", "--set", "metrics.checkpoints=0"]
    out = _run(_tiny(write_spec), "--tracking-uri", tracking_uri, *off)
    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(out["run_ids"][0])
    keys = set(run.data.metrics)
    assert "embedding_cos_structure" in keys
    assert not {"mc_dropout_acc_var", "drc_acc_r0", "inactive_neurons_pct"} & keys
    assert not client.list_artifacts(run.info.run_id, "checkpoints")


def test_scale_sweep_parent_gets_fig5(write_spec, tracking_uri) -> None:
    sweep = '\n[sweep]\n"init.scale" = [1.0, 2.0]\n'
    out = _run(_tiny(write_spec, sweep), "--tracking-uri", tracking_uri,
               "--set", "metrics.mc_dropout=false", "--set", "metrics.drc=false")
    client = MlflowClient(tracking_uri=tracking_uri)
    figs = {a.path for a in client.list_artifacts(out["parent_run_id"], "figures")}
    assert {"figures/fig5_scale.png", "figures/curves_by_group.png"} <= figs


def test_figures_command_recomputes_from_checkpoints(write_spec, tracking_uri, tmp_path) -> None:
    sweep = '\n[sweep]\nseeds = [0, 1]\n'
    out = _run(_tiny(write_spec, sweep), "--tracking-uri", tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    run_id = out["run_ids"][1]
    logged = client.download_artifacts(run_id, "diagnostics/drc.csv", str(tmp_path))
    from grokexp.figures.sets import parse_drc_csv
    from grokexp.paper.recompute import load_record
    from grokexp.tracking.reader import RunReader

    rates, curves = parse_drc_csv(open(logged).read())
    reader = RunReader.open(tracking_uri)
    record = load_record(reader, reader.run(run_id))
    assert sorted(record.drc) == sorted(curves) == [0, 15]
    for epoch in curves:  # the same weights and the same generators: equal at every rate
        assert record.drc[epoch] == pytest.approx(curves[epoch], abs=1e-4)  # csv: 4 digits
    assert sorted(record.cosine) == [0, 20] and sorted(record.embedding_values) == [10]
    expected = {run_id: "fig3_cosine.png", out["parent_run_id"]: "curves_by_group"}
    for target, figure in expected.items():
        result = CliRunner().invoke(main, ["figures", target, "--tracking-uri", tracking_uri])
        assert result.exit_code == 0, result.output
        assert figure in result.output, (target, result.output)
    missing = CliRunner().invoke(main, ["figures", "0" * 32, "--tracking-uri", tracking_uri])
    assert missing.exit_code == 2 and "no run" in missing.output  # bad input


def test_background_probes_equal_probes_in_place(monkeypatch) -> None:
    """The probes run on a copy of their epoch's weights while training goes on; a missing
    copy would let later steps leak into them."""
    import torch

    import grokexp.diagnostics.metrics.dropout as dropout

    monkeypatch.setattr(dropout, "CHUNK_FLOATS", 1)  # one pass per chunk: a probe spans steps

    from grokexp.diagnostics.hook import DiagnosticsHook
    from grokexp.engine.data import make_splits, pair_table
    from grokexp.engine.model import Population
    from grokexp.engine.sweep import expand_members
    from grokexp.engine.train import TrainData, train
    from grokexp.spec.io import validate_spec

    spec = validate_spec({"name": "p", "task": {"modulus": 11},
                          "model": {"embedding_dim": 8, "hidden": 16},
                          "train": {"epochs": 40, "batch_size": 8, "lr": 1e-2},
                          "metrics": {"every": 5, "mc_dropout_every": 10, "mc_samples": 200,
                                      "drc_epochs": [0, 20, 35], "drc_samples": 2},
                          "sweep": {"seeds": [0, 1]}}, "p")
    members = expand_members(spec)
    table = pair_table(spec.task)
    splits = make_splits(spec.task, table, [m.spec.train.split_seed for m in members])

    def records(background: bool) -> dict:
        hook = DiagnosticsHook(background_probes=background)
        population = Population.from_specs([m.spec for m in members], torch.device("cpu"))
        train(population, members, TrainData(table, splits), [hook])
        hook.finish()
        return {i: (r.series.columns["mc_dropout_acc_mean"],
                    r.series.columns["mc_dropout_acc_var"], r.drc,
                    r.series.columns["embedding_cos_structure"],
                    r.series.columns["inactive_neurons_pct"])
                for i, r in hook.records.items()}

    background, in_place = records(True), records(False)
    assert background == in_place
    epochs, _ = background[0][0]
    assert epochs == [0, 10, 20, 30, 40] and sorted(background[1][2]) == [0, 20, 35]
    assert len({tuple(v) for v in background[0][2].values()}) > 1  # the curve moves
    assert background[0][3][0] == list(range(0, 41, 5))  # every evaluation, in order


def test_recorded_embedding_values_are_those_of_their_epoch() -> None:
    """Fig. 7's histograms: each chosen epoch keeps its own values, not a view of weights
    that training goes on changing."""
    import torch

    from grokexp.diagnostics.hook import DiagnosticsHook
    from grokexp.engine.data import make_splits, pair_table
    from grokexp.engine.model import Population
    from grokexp.engine.sweep import expand_members
    from grokexp.engine.train import TrainData, train
    from grokexp.spec.io import validate_spec

    spec = validate_spec({"name": "h", "task": {"modulus": 11},
                          "model": {"embedding_dim": 8, "hidden": 16},
                          "train": {"epochs": 20, "batch_size": 8, "lr": 1e-2},
                          "metrics": {"every": 5, "histogram_epochs": [0, 20]}}, "h")
    members = expand_members(spec)
    table = pair_table(spec.task)
    splits = make_splits(spec.task, table, [m.spec.train.split_seed for m in members])
    population = Population.from_specs([m.spec for m in members], torch.device("cpu"))
    initial = population.params["embedding"].detach()[0].flatten().clone().numpy()
    hook = DiagnosticsHook()
    train(population, members, TrainData(table, splits), [hook])
    hook.finish()
    values = hook.records[0].embedding_values
    final = population.params["embedding"].detach()[0].flatten().numpy()
    assert (values[0] == initial).all() and (values[20] == final).all()
    assert not (values[0] == values[20]).all()
