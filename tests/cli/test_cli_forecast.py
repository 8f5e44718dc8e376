"""`grokexp forecast` end to end into a real MLflow store, read back with MlflowClient."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from grokexp.cli import main

# a + b mod 17, 80% of pairs for training: at weight decay 1 it groks within 200 epochs, at 0.3
# later or not at all (tests/optimize_helpers.py)
SPEC = """
name = "fc"
[task]
modulus = 17
train_fraction = 0.8
[model]
embedding_dim = 24
hidden = 48
[train]
epochs = 200
lr = 1e-2
batch_size = 64
[metrics]
every = 10
mc_dropout = false
drc = false
checkpoints = 0
[sweep]
seeds = [0]
"train.weight_decay" = [0.3, 1.0]
"""


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_forecast_a_spec_logs_the_table_and_figures(write_spec, tracking_uri, tmp_path):
    result = cli("forecast", write_spec(SPEC), "--tracking-uri", tracking_uri, "--json")
    assert result.exit_code == 0, result.output
    out = last_json(result.output)
    client = MlflowClient(tracking_uri=tracking_uri)
    rows = {(r["name"], r["rule"]): r for r in out["indicators"]}
    for name in ("embedding_cos_structure", "embedding_fourier_share", "weight_norm",
                 "log_norm_ratio", "loss_oscillation", "test_loss", "train_acc"):
        assert (name, "50% change") in rows, name
    assert ("test_loss", "peak") in rows and ("test_acc", "50% change") not in rows
    # the members' grok epochs agree with what the engine logged as summary metrics
    assert len(out["members"]) == 2
    for member in out["members"]:
        logged = client.get_run(member["run_id"]).data.metrics.get("test_grok_epoch")
        assert member["test_grok_epoch"] == (None if logged is None else int(logged))
        # the new cadence metrics are in the member's history, one per evaluation
        assert len(client.get_metric_history(member["run_id"], "weight_norm")) == len(
            client.get_metric_history(member["run_id"], "test_acc"))
    run = client.get_run(out["forecast_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["grokexp.role"] == "forecast"
    names = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
    assert names == {"figures/forecast_aligned.png", "figures/forecast_leads.png",
                     "figures/forecast_vs_measured.png"}
    saved = json.loads(Path(client.download_artifacts(run.info.run_id, "forecast.json",
                                                      str(tmp_path))).read_text())
    assert saved["indicators"] == out["indicators"] and saved["members"] == out["members"]
    table = Path(client.download_artifacts(run.info.run_id, "forecast.md",
                                           str(tmp_path))).read_text()
    assert "embedding_fourier_share" in table and "MdAPE" in table


def test_forecast_runs_made_by_grokexp_run(write_spec, tracking_uri):
    made = cli("run", write_spec(SPEC), "--tracking-uri", tracking_uri, "--json")
    assert made.exit_code == 0, made.output
    runs = last_json(made.output)
    by_parent = cli("forecast", "--runs", runs["parent_run_id"], "--tracking-uri",
                    tracking_uri, "--json")
    assert by_parent.exit_code == 0, by_parent.output
    one = last_json(by_parent.output)
    assert [m["run_id"] for m in one["members"]] == runs["run_ids"]
    by_members = cli("forecast", "--runs", runs["run_ids"][0], "--runs", runs["run_ids"][1],
                     "--tracking-uri", tracking_uri, "--json")
    two = last_json(by_members.output)
    assert two["indicators"] == one["indicators"] and two["forecasts"] == one["forecasts"]
    assert two["forecast_run_id"] != one["forecast_run_id"]
    # several ids after one --runs, as the docs write it
    spaced = cli("forecast", "--runs", *runs["run_ids"], "--tracking-uri", tracking_uri,
                 "--json")
    assert spaced.exit_code == 0, spaced.output
    three = last_json(spaced.output)
    assert three["source_runs"] == runs["run_ids"]
    assert three["indicators"] == one["indicators"] and three["forecasts"] == one["forecasts"]
    text = cli("forecast", "--runs", runs["parent_run_id"], "--tracking-uri", tracking_uri)
    assert text.exit_code == 0 and "lead median" in text.output


def test_bad_input_is_one_line_and_a_nonzero_exit(write_spec, tracking_uri):
    unknown = cli("forecast", "--runs", "0123456789abcdef", "--tracking-uri", tracking_uri)
    assert unknown.exit_code == 2
    assert unknown.output.strip() == "--runs: 0123456789abcdef: no such run in the store"
    neither = cli("forecast", "--tracking-uri", tracking_uri)
    assert neither.exit_code == 2 and len(neither.output.strip().splitlines()) == 1
    both = cli("forecast", write_spec(SPEC), "--runs", "x", "--tracking-uri", tracking_uri)
    assert both.exit_code == 2
    two_specs = cli("forecast", "a.toml", "b.toml", "--tracking-uri", tracking_uri)
    assert two_specs.exit_code == 2 and "one SPEC_FILE only" in two_specs.output
    with_set = cli("forecast", "--runs", "x", "--set", "train.lr=1", "--tracking-uri",
                   tracking_uri)
    assert with_set.exit_code == 2 and "--set" in with_set.output
    alone = cli("run", write_spec(SPEC.replace('[0.3, 1.0]', '[1.0]')), "--tracking-uri",
                tracking_uri, "--json")
    single = cli("forecast", "--runs", last_json(alone.output)["run_ids"][0],
                 "--tracking-uri", tracking_uri)
    assert single.exit_code == 1
    assert single.output.strip().endswith("a forecast needs a population of at least 2")


# the same members, each also with its embedding frozen: frozen members read back from the
# store by their ``trainable = false`` param, and the table's AUC with and without them
FROZEN_SPEC = SPEC.replace("epochs = 200", "epochs = 120") + \
    '"init.embedding.trainable" = [true, false]\n'


def test_frozen_members_come_from_their_params(write_spec, tracking_uri):
    result = CliRunner().invoke(main, ["forecast", write_spec(FROZEN_SPEC), "--tracking-uri",
                                       tracking_uri, "--json", "--quiet"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    client = MlflowClient(tracking_uri=tracking_uri)
    for member in out["members"]:
        params = client.get_run(member["run_id"]).data.params
        assert member["frozen"] == (params["varied.init.embedding.trainable"] == "False")
    assert sum(m["frozen"] for m in out["members"]) == 2
    # the unfrozen AUC counts only the two trained members at most
    assert all(r["auc_unfrozen_members"] <= 2 for r in out["indicators"])
