"""`grokexp optimize` end to end: a real Optuna study, real populations, a real MLflow store."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from optimize_helpers import OPT_TINY, load, optimize
from optuna.trial import TrialState

from grokexp.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")




def children(client: MlflowClient, parent) -> list:
    return client.search_runs([parent.info.experiment_id],
                              f"tags.mlflow.parentRunId = '{parent.info.run_id}'")


def test_journal_study_records_trials_runs_figures_and_a_reproducible_best(
        write_spec, tracking_uri, tmp_path):
    spec = write_spec(OPT_TINY, "opt.toml")
    result = optimize(spec, "--tracking-uri", tracking_uri, "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    journal = tmp_path / "mlruns" / "optuna.log"  # default: beside the MLflow store
    study = load(str(journal))
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert trials[0].params == {"init.embedding.shift": 0.0, "train.weight_decay": 1.0}
    penalty = 2.0 * 250
    for t in trials:
        scores = t.user_attrs["seed_scores"]
        assert len(scores) == 2
        as_values = [penalty if s is None else s for s in scores]
        assert t.value == statistics.median_high(as_values)
        assert t.user_attrs["censored"] == (t.value == penalty)
        assert all(s is None or 0 <= s <= 250 for s in scores)
    assert trials[0].user_attrs["censored"] is False  # the paper default groks here

    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name("opt")
    parents = client.search_runs([exp.experiment_id], "tags.`grokexp.role` = 'study'")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["grokexp.study"] == "opt"
    assert parent.data.tags["grokexp.storage"] == str(journal)
    assert parent.data.tags["grokexp.best_trial"] == str(study.best_trial.number)
    figs = {a.path for a in client.list_artifacts(parent.info.run_id, "figures")}
    assert {"figures/optimization_history.png", "figures/objective_space.png",
            "figures/param_importances.png"} <= figs
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"best.toml", "best_trials.md", "spec.resolved.toml"} <= names
    runs = {int(r.data.tags["optuna.trial"]): r for r in children(client, parent)}
    assert sorted(runs) == [0, 1, 2, 3]
    for t in trials:
        run = runs[t.number]
        assert run.info.run_id == t.user_attrs["mlflow_run_id"]
        assert run.info.status == "FINISHED" and run.data.tags["optuna.state"] == "COMPLETE"
        assert run.data.metrics["objective"] == t.value
        assert run.data.tags["censored"] == str(t.user_attrs["censored"]).lower()
        assert float(run.data.params["train.weight_decay"]) == t.params["train.weight_decay"]
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "test_acc")]
        assert steps[0] == 0 and steps == sorted(steps) and len(steps) > 5
        for seed, score in zip((0, 1), t.user_attrs["seed_scores"], strict=True):
            key = f"seed{seed}.grokking_delay"
            assert (key in run.data.metrics) == (score is not None)  # no fake numbers
    best = (tmp_path / "out" / "best.toml").read_text()
    assert f"Best trial {study.best_trial.number} of study 'opt'" in best
    assert "[optimize]" not in best and "seeds = [" in best
    assert f"| {study.best_trial.number} |" in result.output

    # best.toml is a plain spec: `grokexp run` retrains the best point's seeds to its scores
    run = CliRunner().invoke(main, ["run", str(tmp_path / "out" / "best.toml"),
                                    "--tracking-uri", tracking_uri, "--json"],
                             catch_exceptions=False)
    assert run.exit_code == 0, run.output
    members = json.loads(run.output.strip().splitlines()[-1])["members"]
    assert [m["varied"]["train.seed"] for m in members] == [0, 1]
    assert [m["grokking_delay"] for m in members] == study.best_trial.user_attrs["seed_scores"]


def test_sqlite_study_resumes_to_its_total(write_spec, tracking_uri, tmp_path):
    spec = write_spec(OPT_TINY, "opt.toml")
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    common = [spec, "--tracking-uri", tracking_uri, "--storage", storage, "--out", str(tmp_path),
              "--study", "s1", "--batch", "2", "--set", "train.epochs=30"]
    assert optimize(*common, "--n-trials", "2").exit_code == 0
    first = {t.number: t.value for t in load(storage, "s1").get_trials()}
    assert sorted(first) == [0, 1]
    again = optimize(*common, "--n-trials", "3")
    assert again.exit_code == 0, again.output
    trials = load(storage, "s1").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert {t.number: t.value for t in trials if t.number < 2} == first
    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name("opt")
    parents = client.search_runs([exp.experiment_id], "tags.`grokexp.role` = 'study'")
    assert len(parents) == 1  # one parent run per study, across invocations
    assert parents[0].data.tags["grokexp.storage"] == storage
    assert len(children(client, parents[0])) == 3


def test_censored_trials_get_the_documented_penalty(write_spec, tracking_uri, tmp_path):
    spec = write_spec(OPT_TINY, "opt.toml")  # 30 epochs: nothing generalises
    result = optimize(spec, "--tracking-uri", tracking_uri, "--out", str(tmp_path),
                      "--n-trials", "2", "--set", "train.epochs=30",
                      "--set", "optimize.censor_penalty=3")
    assert result.exit_code == 0, result.output
    trials = load(str(tmp_path / "mlruns" / "optuna.log")).get_trials()
    assert len(trials) == 2
    for t in trials:
        assert t.value == 90.0 and t.user_attrs["censored"] is True
        assert t.user_attrs["seed_scores"] == [None, None]
        assert t.user_attrs["censored_seeds"] == 2
        run = MlflowClient(tracking_uri=tracking_uri).get_run(t.user_attrs["mlflow_run_id"])
        assert run.data.tags["censored"] == "true"
        assert not [k for k in run.data.metrics if k.endswith("grokking_delay")]


def test_pruner_stops_trials_that_do_not_progress(write_spec, tracking_uri, tmp_path):
    spec = write_spec(OPT_TINY, "opt.toml")
    result = optimize(spec, "--tracking-uri", tracking_uri, "--out", str(tmp_path),
                      "--n-trials", "2", "--set", 'optimize.pruner="threshold"',
                      "--set", "optimize.prune_min_test_acc=0.99",
                      "--set", "optimize.prune_warmup=50")
    assert result.exit_code == 0, result.output
    trials = load(str(tmp_path / "mlruns" / "optuna.log")).get_trials()
    assert [t.state for t in trials] == [TrialState.PRUNED] * 2
    for t in trials:
        assert max(t.intermediate_values) == 50  # pruned at the first check of the warm-up
        run = MlflowClient(tracking_uri=tracking_uri).get_run(t.user_attrs["mlflow_run_id"])
        assert run.info.status == "KILLED" and run.data.tags["optuna.state"] == "PRUNED"


def test_bad_optimize_input_exits_2_with_one_line(write_spec, tracking_uri, tmp_path):
    spec = write_spec(OPT_TINY.replace('"train.weight_decay" = {', '"train.wd" = {'), "b.toml")
    result = CliRunner().invoke(main, ["optimize", spec, "--tracking-uri", tracking_uri])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"{spec}: optimize.space.train.wd: unknown key",
        f"{spec}: optimize.enqueue[0].train.weight_decay: not a key of optimize.space"]
    spec = write_spec(OPT_TINY.replace("low = 0.3, high = 3.0, log = true",
                                       "low = -1.0, high = 3.0"), "c.toml")
    result = CliRunner().invoke(main, ["optimize", spec, "--tracking-uri", tracking_uri])
    assert result.exit_code == 2
    assert result.output.strip() == (f"{spec}: optimize.space.train.weight_decay: -1.0 gives "
                                     "train.weight_decay: must be >= 0.0 (got -1.0)")
    assert MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name("opt") is None
    plain = write_spec('name = "p"\n', "p.toml")
    result = CliRunner().invoke(main, ["optimize", plain, "--tracking-uri", tracking_uri])
    assert result.exit_code == 2 and "optimize: required" in result.output
    result = CliRunner().invoke(main, ["optimize", write_spec(OPT_TINY, "o.toml"),
                                       "--tracking-uri", tracking_uri, "--storage", "study.txt"])
    assert result.exit_code == 2 and result.output.startswith("error: --storage study.txt:")
    assert "Traceback" not in result.output
    assert not (tmp_path / "mlruns" / "optuna.log").exists()


def test_a_study_refuses_a_worker_with_a_different_spec(write_spec, tracking_uri, tmp_path):
    spec = write_spec(OPT_TINY, "opt.toml")
    args = [spec, "--tracking-uri", tracking_uri, "--out", str(tmp_path), "--n-trials", "0"]
    assert optimize(*args).exit_code == 0
    other = CliRunner().invoke(main, ["optimize", *args, "--set", "train.lr=0.5"])
    assert other.exit_code == 2 and "made from a different spec" in other.output


def test_sampler_kinds_build(write_spec):
    from grokexp.spec.io import load_spec
    from grokexp.study.sampler import make_pruner, make_sampler

    opt = load_spec(OPT_TINY, "o.toml").optimize
    assert isinstance(make_sampler(opt, 1), optuna.samplers.TPESampler)
    for kind, cls in (("gp", optuna.samplers.GPSampler), ("random", optuna.samplers.RandomSampler)):
        assert isinstance(make_sampler(opt.model_copy(update={"sampler": kind}), 1), cls)
    assert isinstance(make_pruner(opt.model_copy(update={"pruner": "median"})),
                      optuna.pruners.MedianPruner)


def test_storage_urls_are_normalised_and_masked(tmp_path):
    from grokexp.study.storage import StorageError, mask_password, resolve_storage

    target = resolve_storage("postgresql://u:secret@127.0.0.1:5433/db", "sqlite:///x/mlflow.db")
    assert target.location == "postgresql+psycopg://u:secret@127.0.0.1:5433/db"
    assert target.display == "postgresql+psycopg://u:***@127.0.0.1:5433/db"
    assert mask_password("sqlite:///a.db") == "sqlite:///a.db"
    assert resolve_storage(None, "sqlite:///x/mlflow.db").location == str(Path("x/optuna.log"))
    assert resolve_storage(None, "http://host:5000").location == str(Path("mlruns/optuna.log"))
    assert resolve_storage("a/b.log", "http://h").kind == "journal"
    try:
        resolve_storage("study.db", "http://h")
    except StorageError as err:
        assert err.exit_code == 2
    else:
        raise AssertionError("a path that is neither a URL nor *.log must be refused")


def test_missing_postgres_driver_names_the_extra(monkeypatch):
    import sys

    from grokexp.study.storage import StorageError, open_storage, resolve_storage

    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if psycopg were not installed
    target = resolve_storage("postgresql://u:pw@127.0.0.1:1/db", "http://h")
    with pytest.raises(StorageError) as info:
        open_storage(target)
    assert str(info.value) == ("--storage postgresql+psycopg://u:***@127.0.0.1:1/db: PostgreSQL "
                               "needs the psycopg 3 driver: pip install 'grokexp[postgres]'")
    assert info.value.exit_code == 2
