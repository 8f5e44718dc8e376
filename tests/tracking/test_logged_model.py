"""Each member's trained network is an MLflow LoggedModel of its run, loadable without grokexp;
a study logs only its best trial's networks (one per seed), and ``log_model = false`` none.

The model is loaded in a child process where ``import grokexp`` fails, and its logits on every
pair of the task are scored here against labels written from the task's definition
((a + b) mod P); the accuracies on the run's split must be the ones the run logged. grokexp
only supplies which pairs are in the training split (from the run's logged params), as in
tests/run/test_provenance.py. The logits themselves are held against the paper's network
written out in numpy from the run's ``weights/final.pt``: a population exports its network
once and writes each later member's weights into it (tracking/model_folder.py), so each
member's model must carry that member's weights.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow.artifacts
import mlflow.pytorch
import numpy as np
import torch
from click.testing import CliRunner
from conftest import TINY
from mlflow.models import Model
from mlflow.tracking import MlflowClient
from optimize_helpers import OPT_TINY, optimize

from grokexp.cli import main
from grokexp.engine.data import make_splits, pair_table
from grokexp.spec.schema import TaskSpec

P = 11
SEEDS = "\n[sweep]\nseeds = [0, 1, 2]\n"
REPO = str(Path(__file__).resolve().parents[2])

# Run in a child process: find each run's model, load it with MLflow alone, and print its
# logits' argmax for every pair (a, b), a-major, plus the output shape for 1 and P*P pairs.
LOAD = """
import json, sys
sys.modules["grokexp"] = None  # any import of grokexp fails here
sys.path = [p for p in sys.path  # the repository's sources, not its virtual environment
            if not p.startswith({repo!r}) or "site-packages" in p]
import mlflow, mlflow.pytorch, torch
mlflow.set_tracking_uri({uri!r})
pairs = torch.tensor([[a, b] for a in range({p}) for b in range({p})], dtype=torch.int64)
out = {{}}
for run_id in {run_ids!r}:
    found = mlflow.search_logged_models(experiment_ids=[{experiment!r}], output_format="list",
                                        filter_string=f"source_run_id = '{{run_id}}'")
    model = mlflow.pytorch.load_model(found[0].model_uri)
    with torch.no_grad():
        logits, one = model(pairs), model(pairs[:1])
    out[run_id] = {{"found": len(found), "shape": list(logits.shape), "one": list(one.shape),
                   "predicted": logits.argmax(1).tolist(), "logits": logits.tolist()}}
out["grokexp"] = sys.modules.get("grokexp") is not None
print(json.dumps(out))
"""


def run_cli(spec: str, tracking_uri: str) -> dict:
    result = CliRunner().invoke(main, ["run", spec, "--tracking-uri", tracking_uri, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def load_elsewhere(tracking_uri: str, experiment_id: str, run_ids: list[str],
                   cwd: Path) -> dict:
    script = LOAD.format(repo=REPO, uri=tracking_uri, experiment=experiment_id,
                         run_ids=run_ids, p=P)
    done = subprocess.run([sys.executable, "-I", "-c", script], cwd=cwd, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def reference_logits(weights: dict[str, torch.Tensor]) -> np.ndarray:
    """The paper's network from its definition, in float64: E[a] ‖ E[b] → ReLU layer → logits,
    for every pair (a, b), a-major (grokexp keeps each layer's weight as in × out)."""
    w = {name: value.double().numpy() for name, value in weights.items()}
    embedded = w["embedding"]
    pairs = np.array([[a, b] for a in range(P) for b in range(P)])
    x = np.concatenate([embedded[pairs[:, 0]], embedded[pairs[:, 1]]], axis=1)
    hidden = np.maximum(x @ w["hidden.0.weight"] + w["hidden.0.bias"], 0.0)
    return hidden @ w["output.weight"] + w["output.bias"]


def test_each_member_is_a_logged_model_that_reproduces_its_accuracies(
        write_spec, tracking_uri, tmp_path, torch_exports):
    out = run_cli(write_spec(TINY + SEEDS), tracking_uri)
    assert len(torch_exports) == 1  # the population's network exported once, for three members
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = out["experiment_id"]
    every = client.search_logged_models([experiment])
    assert sorted(m.source_run_id for m in every) == sorted(out["run_ids"])  # one per member
    loaded = load_elsewhere(tracking_uri, experiment, out["run_ids"], tmp_path)
    assert loaded["grokexp"] is False
    for member in out["members"]:
        run = client.get_run(member["run_id"])
        got = loaded[member["run_id"]]
        assert got["found"] == 1
        assert got["shape"] == [P * P, P] and got["one"] == [1, P]  # any N: a free batch axis
        params = run.data.params
        task = TaskSpec(modulus=int(params["task.modulus"]), operation=params["task.operation"],
                        train_fraction=float(params["task.train_fraction"]))
        table = pair_table(task)
        train = set(make_splits(task, table, [int(params["train.split_seed"])])
                    .train_index[0].tolist())
        predicted = torch.tensor(got["predicted"]).view(P, P)  # [a, b]
        correct = [bool(predicted[a, b] == (a + b) % P)
                   for a, b in zip(table.left.tolist(), table.right.tolist(), strict=True)]
        n_train = len(train)
        train_acc = sum(correct[i] for i in train) / n_train
        test_acc = sum(c for i, c in enumerate(correct) if i not in train) / (P * P - n_train)
        logged = run.data.metrics
        # the twin's matmuls may round differently from the batched forward the run measured
        # with: a near tie between two logits could flip one pair's argmax, no more
        assert abs(train_acc - logged["train_acc"]) <= 1 / n_train + 1e-9
        assert abs(test_acc - logged["test_acc"]) <= 1 / (P * P - n_train) + 1e-9
        assert logged["train_acc"] == member["final_train_acc"]
        weights = torch.load(client.download_artifacts(member["run_id"], "weights/final.pt",
                                                       str(tmp_path)), weights_only=True)
        # float32 sums of 2·16 and 32 products of values of order one, against float64:
        # a few units in the sixth digit at most
        np.testing.assert_allclose(np.array(got["logits"]), reference_logits(weights),
                                   rtol=0, atol=1e-4)
    # each its own MLflow model, not the first one's description copied
    described = [Model.load(mlflow.artifacts.download_artifacts(
        artifact_uri=f"{m.artifact_location}/MLmodel", dst_path=str(tmp_path / m.model_id)))
        for m in every]
    assert len({d.model_uuid for d in described}) == len(every)
    assert len({d.model_size_bytes for d in described}) == 1  # same tensors, same archive


def test_log_model_false_logs_none(write_spec, tracking_uri):
    spec = TINY.replace("epochs = 20", "epochs = 5") + "\n[tracking]\nlog_model = false\n"
    out = run_cli(write_spec(spec), tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    assert len(out["run_ids"]) == 1
    assert client.search_logged_models([out["experiment_id"]]) == []
    artifacts = {a.path for a in client.list_artifacts(out["run_ids"][0], "weights")}
    assert artifacts == {"weights/final.pt"}  # the run itself is complete


def test_a_study_logs_only_its_best_trials_networks(write_spec, tracking_uri, tmp_path):
    spec = write_spec(OPT_TINY, "opt.toml")
    result = optimize(spec, "--tracking-uri", tracking_uri, "--out", str(tmp_path),
                      "--n-trials", "2", "--batch", "2", "--set", "train.epochs=20")
    assert result.exit_code == 0, result.output
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("opt").experiment_id
    parent = client.search_runs([experiment], "tags.`grokexp.role` = 'study'")[0]
    best = parent.data.tags["grokexp.best_trial"]
    trials = {r.data.tags["optuna.trial"]: r.info.run_id
              for r in client.search_runs([experiment], "tags.`grokexp.role` = 'trial'")}
    assert len(trials) == 2
    models = client.search_logged_models([experiment])
    assert [m.source_run_id for m in models] == [trials[best]] * 2  # one per seed, best only
    pairs = torch.tensor([[a, b] for a in range(17) for b in range(17)])
    logits = [mlflow.pytorch.load_model(m.artifact_location)(pairs) for m in models]
    assert [tuple(x.shape) for x in logits] == [(17 * 17, 17)] * 2
    assert not torch.equal(logits[0], logits[1])  # the two seeds' networks, not one twice


def test_a_run_without_logged_models_imports_no_export_stack(tmp_path, tracking_uri):
    """Only a member that logs its network costs the export's imports (torch's compiler
    stack, sympy, MLflow's pytorch flavour: about 3 s of CPU once per process): with
    ``log_model = false`` the command's process never imports them."""
    spec = tmp_path / "spec.toml"
    spec.write_text(TINY.replace("epochs = 20", "epochs = 5"), encoding="utf-8")
    code = ("import sys\n"
            "from grokexp.cli import main\n"
            f"args = ['run', {str(spec)!r}, '--tracking-uri', {tracking_uri!r}, '--quiet',\n"
            "        '--set', 'tracking.log_model=' + sys.argv[1]]\n"
            "try:\n"
            "    main(args)\n"
            "except SystemExit as stop:\n"
            "    assert not stop.code, stop.code\n"
            "print('torch._dynamo' in sys.modules, 'mlflow.pytorch' in sys.modules)\n")
    for logged, expected in (("false", "False False"), ("true", "True True")):
        done = subprocess.run([sys.executable, "-c", code, logged], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.strip().splitlines()[-1] == expected, (logged, done.stdout)

