"""`grokexp run` end to end into a real MLflow store, read back with MlflowClient."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from grokexp.cli import main

SWEEP = '\n[sweep]\nseeds = [0, 1]\n"train.weight_decay" = [0.5, 1.0]\n'


def run_cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_single_run_logs_params_metrics_artifacts(write_spec, tracking_uri, tmp_path):
    spec = write_spec()
    result = run_cli("run", spec, "--tracking-uri", tracking_uri, "--json",
                     "--set", "train.weight_decay=0.5")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    assert out["parent_run_id"] is None and len(out["members"]) == 1
    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment(out["experiment_id"])
    assert exp.name == "tiny"
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    run = client.get_run(out["run_ids"][0])
    assert run.info.status == "FINISHED"
    assert run.data.params["train.weight_decay"] == "0.5"
    assert run.data.params["task.modulus"] == "11"
    assert len(run.data.tags["grokexp.spec_hash"]) == 12
    history = client.get_metric_history(run.info.run_id, "test_acc")
    assert [m.step for m in history] == [0, 5, 10, 15, 20]
    for key in ("train_acc", "train_loss", "test_loss"):
        assert len(client.get_metric_history(run.info.run_id, key)) == 5
    member = out["members"][0]
    assert member["final_test_acc"] == history[-1].value
    if member["test_grok_epoch"] is None:
        assert run.data.tags["grokked"] == "false"
        assert "test_grok_epoch" not in run.data.metrics
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"spec.resolved.toml", "figures", "weights"} <= names
    local = Path(client.download_artifacts(run.info.run_id, "weights/final.pt", str(tmp_path)))
    weights = torch.load(local, weights_only=True)
    assert weights["embedding"].shape == (11, 16)
    spec_text = Path(client.download_artifacts(run.info.run_id, "spec.resolved.toml",
                                               str(tmp_path))).read_text()
    assert "weight_decay = 0.5" in spec_text
    figs = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
    assert "figures/accuracy.png" in figs  # the diagnostics add the paper figures


def test_sweep_makes_parent_and_child_runs(write_spec, tracking_uri):
    spec = write_spec(open_tiny() + SWEEP)
    result = run_cli("run", spec, "--tracking-uri", tracking_uri, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    client = MlflowClient(tracking_uri=tracking_uri)
    assert len(out["members"]) == 4
    parent = client.get_run(out["parent_run_id"])
    assert parent.info.status == "FINISHED"
    children = client.search_runs(
        [out["experiment_id"]], f"tags.mlflow.parentRunId = '{out['parent_run_id']}'")
    assert {c.info.run_id for c in children} == set(out["run_ids"])
    for member in out["members"]:
        child = client.get_run(member["run_id"])
        assert float(child.data.params["train.weight_decay"]) == member["varied"][
            "train.weight_decay"]
        assert child.data.params["varied.train.seed"] == str(member["varied"]["train.seed"])
    figs = {a.path for a in client.list_artifacts(parent.info.run_id, "figures")}
    assert "figures/accuracy_overlay.png" in figs


def open_tiny() -> str:
    from conftest import TINY

    return TINY


def test_bad_input_exits_2_with_one_line_and_no_run(write_spec, tracking_uri, tmp_path):
    spec = write_spec('name = "bad"\n[train]\nlr = -1\n')
    result = CliRunner().invoke(main, ["run", spec, "--tracking-uri", tracking_uri])
    assert result.exit_code == 2
    assert result.output.strip() == f"{spec}: train.lr: must be > 0.0 (got -1)"
    from mlflow.tracking import MlflowClient as Client

    assert Client(tracking_uri=tracking_uri).search_runs(["0"]) == []
    assert Client(tracking_uri=tracking_uri).get_experiment_by_name("bad") is None
    missing = CliRunner().invoke(main, ["run", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 2 and "no such file" in missing.output
    unknown = CliRunner().invoke(main, ["validate", write_spec(), "--set", "train.nope=1"])
    assert unknown.exit_code == 2 and unknown.output.strip().endswith("train.nope: unknown key")
    assert "Traceback" not in result.output + missing.output + unknown.output


def test_validate_prints_resolved_spec_and_schema_is_json(write_spec):
    result = run_cli("validate", write_spec(), "--set", "init.scale=3")
    assert result.exit_code == 0
    assert "1 member(s) in 1 population(s)" in result.output and "scale = 3" in result.output
    schema = json.loads(run_cli("schema").output)
    assert "train" in schema["properties"] and schema["additionalProperties"] is False


def test_ui_links_open_the_model_training_view(write_spec, tracking_uri):
    from grokexp.cli.ui import experiment_links

    out = json.loads(run_cli("run", write_spec(), "--tracking-uri", tracking_uri,
                             "--json").output.strip().splitlines()[-1])
    links = experiment_links(tracking_uri, "127.0.0.1", 5055, None)
    assert links == [f"tiny: http://127.0.0.1:5055/#/experiments/{out['experiment_id']}"
                     "/runs?workflowType=machine_learning"]


def test_help_and_validate_import_neither_torch_nor_mlflow():
    import subprocess
    import sys

    probe = ("import sys\nfrom click.testing import CliRunner\nfrom grokexp.cli import main\n"
             "for args in (['--help'], ['validate', sys.argv[1]]):\n"
             "    result = CliRunner().invoke(main, args)\n"
             "    assert result.exit_code == 0, result.output\n"
             "print(sorted(m for m in ('torch', 'mlflow', 'optuna') if m in sys.modules))\n")
    spec = Path(__file__).resolve().parents[2] / "specs" / "baseline.toml"
    done = subprocess.run([sys.executable, "-c", probe, str(spec)], capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_json_spec_runs_like_its_toml(tmp_path, tracking_uri):
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(tomllib.loads(open_tiny())))
    result = run_cli("run", str(spec), "--tracking-uri", tracking_uri, "--json",
                     "--set", "train.weight_decay=0.25")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    client = MlflowClient(tracking_uri=tracking_uri)
    assert client.get_experiment(out["experiment_id"]).name == "tiny"
    run = client.get_run(out["run_ids"][0])
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert (params["name"], params["task.modulus"], params["model.embedding_dim"],
            params["model.hidden"], params["train.epochs"], params["train.lr"],
            params["train.batch_size"], params["metrics.every"]) == (
        "tiny", "11", "16", "32", "20", "0.01", "16", "5")
    assert params["train.weight_decay"] == "0.25"  # --set applies to JSON specs too
    assert run.data.tags["grokexp.spec_file"] == str(spec)
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "test_acc")]
    assert steps == [0, 5, 10, 15, 20]
    weights = torch.load(Path(client.download_artifacts(run.info.run_id, "weights/final.pt",
                                                        str(tmp_path))), weights_only=True)
    assert weights["embedding"].shape == (11, 16) and weights["hidden.0.weight"].shape == (32, 32)


def test_tracking_uri_option_beats_environment_beats_spec(tmp_path, migrated_store,
                                                          monkeypatch):
    """``--tracking-uri`` > MLFLOW_TRACKING_URI > ``[tracking] tracking_uri``: three real
    stores, and each run lands in exactly the one that should win."""
    import shutil

    stores = {}
    for name in ("option", "env", "spec"):
        (tmp_path / name).mkdir()
        shutil.copy(migrated_store, tmp_path / name / "mlflow.db")
        stores[name] = f"sqlite:///{tmp_path / name / 'mlflow.db'}"
    spec = tmp_path / "tiny.toml"
    spec.write_text(open_tiny().replace("[train]", f'[tracking]\ntracking_uri = '
                                                   f'"{stores["spec"]}"\n[train]'))
    cheap = ["--set", "train.epochs=5", "--set", "metrics.checkpoints=0", "--json"]

    def runs_in(store: str) -> set[str]:
        client = MlflowClient(tracking_uri=store)
        return {r.info.run_id for e in client.search_experiments()
                for r in client.search_runs([e.experiment_id])}

    def run_id(*options: str) -> str:
        result = run_cli("run", str(spec), *options, *cheap)
        assert result.exit_code == 0, result.output
        return json.loads(result.output.strip().splitlines()[-1])["run_ids"][0]

    monkeypatch.setenv("MLFLOW_TRACKING_URI", stores["env"])
    first = run_id("--tracking-uri", stores["option"])
    assert (runs_in(stores["option"]), runs_in(stores["env"]), runs_in(stores["spec"])) == (
        {first}, set(), set())
    second = run_id()
    assert (runs_in(stores["option"]), runs_in(stores["env"]), runs_in(stores["spec"])) == (
        {first}, {second}, set())
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    third = run_id()
    assert (runs_in(stores["option"]), runs_in(stores["env"]), runs_in(stores["spec"])) == (
        {first}, {second}, {third})
    for name in ("option", "env", "spec"):  # artifacts beside their own store
        assert (tmp_path / name / "artifacts").is_dir()
