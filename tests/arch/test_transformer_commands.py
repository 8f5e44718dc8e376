"""The commands on a transformer spec, end to end into a real MLflow store: checkpoints,
resume, ``grokexp figures``, ``grokexp forecast --runs`` and ``grokexp optimize``.

Every result is read back from the store (MlflowClient, RunReader); a checkpoint's weights are
scored by the reference transformer written in tests/ (reference_transformer.py), grokexp
giving only which pairs are in the training split.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import mlflow.pytorch
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from optimize_helpers import load, optimize
from optuna.trial import TrialState
from reference_transformer import ReferenceTransformer

from grokexp.cli import main
from grokexp.engine.data import make_splits, pair_table
from grokexp.engine.sweep import expand_members
from grokexp.errors import RunInterrupted
from grokexp.run.runner import run_experiment
from grokexp.spec.io import load_spec
from grokexp.spec.schema import TaskSpec
from grokexp.tracking.mlflow_tracker import MlflowTracker
from grokexp.tracking.reader import RunReader

pytestmark = pytest.mark.usefixtures("one_thread")

P, D, HEADS, D_MLP, EPOCHS = 11, 16, 2, 32, 10
# a + b mod 11, half the pairs (60) to train in batches of 20; dropout at every site, so
# resume must carry the dropout generators too; every chosen epoch inside the budget, so
# figures recompute the DRC, cosine and histograms from the checkpoints
SPEC = f"""
name = "transformer_commands"
[task]
modulus = {P}
[model]
architecture = "transformer"
d_model = {D}
n_heads = {HEADS}
d_mlp = {D_MLP}
[train]
epochs = {EPOCHS}
lr = 1e-2
batch_size = 20
dropout = 0.1
[metrics]
every = 2
mc_dropout_every = 2
mc_samples = 4
drc_samples = 1
drc_rates = [0.0, 0.5]
drc_epochs = [0, {EPOCHS}]
heatmap_epochs = [0, {EPOCHS}]
histogram_epochs = [0, {EPOCHS}]
checkpoints = 3
[sweep]
seeds = [0, 1]
"""
NO_MODELS = "[tracking]\nlog_model = false\n"

# one member's parameters, written from the architecture's definition (tokens 0..P-1 and "=",
# three positions, no attention biases, matmul weights stored (in, out))
SHAPES = {"embedding": (P + 1, D), "positional": (3, D),
          "blocks.0.attn.w_q": (D, D), "blocks.0.attn.w_k": (D, D),
          "blocks.0.attn.w_v": (D, D), "blocks.0.attn.w_o": (D, D),
          "blocks.0.mlp.w_in": (D, D_MLP), "blocks.0.mlp.b_in": (D_MLP,),
          "blocks.0.mlp.w_out": (D_MLP, D), "blocks.0.mlp.b_out": (D,),
          "unembed.weight": (D, P)}
METRICS = ("train_acc", "test_acc", "train_loss", "test_loss")


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def local_path(artifact_uri: str) -> Path:
    return Path(unquote(urlparse(artifact_uri).path))


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, migrated_store: Path):
    """One `grokexp run` of the transformer sweep into a store of this module's own: every
    test reads it (the resume test as the uninterrupted reference)."""
    folder = tmp_path_factory.mktemp("transformer_run")
    (folder / "mlruns").mkdir()
    shutil.copy(migrated_store, folder / "mlruns" / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"
    spec = folder / "transformer.toml"
    spec.write_text(SPEC + NO_MODELS)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: more threads only contend on a shared CPU
    try:
        result = cli("run", str(spec), "--tracking-uri", uri, "--json")
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    return uri, last_json(result.output), folder


def test_checkpoints_hold_the_transformer_and_reproduce_its_accuracy(made, tmp_path):
    uri, out, _ = made
    client = MlflowClient(tracking_uri=uri)
    finals = []
    assert len(out["members"]) == 2
    for member in out["members"]:
        run_id = member["run_id"]
        params = client.get_run(run_id).data.params
        task = TaskSpec(modulus=int(params["task.modulus"]), operation=params["task.operation"],
                        train_fraction=float(params["task.train_fraction"]))
        table = pair_table(task)
        pairs = torch.stack([table.left, table.right], 1).long()
        answers = (pairs[:, 0] + pairs[:, 1]) % P  # the task's definition
        is_train = torch.zeros(len(pairs), dtype=torch.bool)
        is_train[make_splits(task, table, [int(params["train.split_seed"])]).train_index[0]] = 1
        names = sorted(a.path for a in client.list_artifacts(run_id, "checkpoints"))
        epochs = [int(Path(n).stem.removeprefix("epoch_")) for n in names]
        assert epochs[0] == 0 and epochs[-1] == EPOCHS and len(epochs) >= 3, names
        for name in names:
            state = torch.load(client.download_artifacts(run_id, name, str(tmp_path / run_id)),
                               weights_only=True)
            assert {k: tuple(v.shape) for k, v in state.items()} == SHAPES, name
        final = torch.load(client.download_artifacts(run_id, "weights/final.pt",
                                                     str(tmp_path / run_id)), weights_only=True)
        assert all(torch.equal(final[k], state[k]) for k in SHAPES)  # the last checkpoint
        net = ReferenceTransformer.from_member(state, HEADS, layer_norm=False)
        with torch.no_grad():
            logits = net(pairs)
        right = (logits.argmax(1) == answers).float()
        loss = F.cross_entropy(logits, answers, reduction="none")
        logged = client.get_run(run_id).data.metrics
        # float32 losses near log P: the two forwards' sums round apart by a few 1e-7
        # (measured), far below 1e-5
        assert abs(float(loss[is_train].mean()) - logged["train_loss"]) < 1e-5
        assert abs(float(loss[~is_train].mean()) - logged["test_loss"]) < 1e-5
        # the reference's matmuls may round differently from the batched forward the run
        # measured with: a near tie between two logits could flip one pair's argmax, no more
        n_train, n_test = int(is_train.sum()), int((~is_train).sum())
        assert abs(float(right[is_train].mean()) - logged["train_acc"]) <= 1 / n_train + 1e-9
        assert abs(float(right[~is_train].mean()) - logged["test_acc"]) <= 1 / n_test + 1e-9
        assert logged["test_acc"] == member["final_test_acc"]
        finals.append(final)
    assert not torch.equal(finals[0]["embedding"], finals[1]["embedding"])  # two seeds


def saved(client: MlflowClient, run_id: str, folder: Path) -> dict[str, dict]:
    """A member run's weights files (checkpoints and final), each loaded."""
    paths = [a.path for a in client.list_artifacts(run_id, "checkpoints")] + [
        "weights/final.pt"]
    return {path: torch.load(client.download_artifacts(run_id, path, str(folder / run_id)),
                             weights_only=True) for path in paths}


def test_interrupted_transformer_resumes_to_the_uninterrupted_run_bitwise(made, tracking_uri,
                                                                         tmp_path):
    spec = load_spec(SPEC, "transformer.toml")
    calls = iter(range(10**9))
    with pytest.raises(RunInterrupted) as stopped:  # between two evaluations (every = 2)
        run_experiment(spec, expand_members(spec), MlflowTracker(tracking_uri, spec.name),
                       should_stop=lambda: next(calls) >= 5)
    root = stopped.value.root_run_id
    client = MlflowClient(tracking_uri=tracking_uri)
    stop = int(client.get_run(root).data.tags["grokexp.checkpoint_epoch"])
    assert 0 < stop < EPOCHS and stop % 2 == 1
    resumed = cli("run", "--resume", root, "--tracking-uri", tracking_uri, "--json")
    assert resumed.exit_code == 0, resumed.output
    out = last_json(resumed.output)
    assert out["parent_run_id"] == root and len(out["members"]) == 2
    # the same sweep run without interruption (the module's `grokexp run`) is the reference
    whole_client = MlflowClient(tracking_uri=made[0])
    whole = {m["index"]: m["run_id"] for m in made[1]["members"]}
    for member in out["members"]:
        run_id, twin_id = member["run_id"], whole[member["index"]]
        assert client.get_run(run_id).info.status == "FINISHED"
        # every series bitwise: the losses and accuracies, and the probes' (MC dropout, DRC,
        # inactive neurons, embedding structure), whose generators the checkpoint carries
        keys = set(whole_client.get_run(twin_id).data.metrics)
        assert set(METRICS) <= keys and any(k.startswith("mc_dropout") for k in keys)
        assert set(client.get_run(run_id).data.metrics) == keys
        for key in sorted(keys):
            got = [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
            want = [(m.step, m.value) for m in whole_client.get_metric_history(twin_id, key)]
            assert got == want, key
        got_weights = saved(client, run_id, tmp_path / "resumed")
        want_weights = saved(whole_client, twin_id, tmp_path / "whole")
        assert got_weights.keys() == want_weights.keys()  # the same checkpoint epochs
        for path, state in want_weights.items():
            assert got_weights[path].keys() == state.keys() == SHAPES.keys(), path
            assert all(torch.equal(got_weights[path][k], state[k]) for k in state), path
    models = client.search_logged_models([out["experiment_id"]])
    assert sorted(m.source_run_id for m in models) == sorted(out["run_ids"])


def test_figures_redraws_a_transformer_member_from_its_checkpoints(made):
    uri, out, _ = made
    run_id = out["run_ids"][0]
    client = MlflowClient(tracking_uri=uri)
    folder = local_path(client.get_run(run_id).info.artifact_uri) / "figures"
    shutil.rmtree(folder)  # what training drew: the command must draw it again
    result = cli("figures", run_id, "--tracking-uri", uri)
    assert result.exit_code == 0, result.output
    drawn = {line.split(": ", 1)[1] for line in result.output.splitlines()
             if line.startswith(f"{run_id}: ")}
    # fig2 (the DRC) runs the transformer's forward on each checkpoint; fig3 and fig7 read
    # its token embedding; fig1 and fig11 are its MC-dropout and inactive-neuron series
    expected = {"figures/fig1_mc_dropout.png", "figures/fig2_drc.png",
                "figures/fig3_cosine.png", "figures/fig7_embedding_histograms.png",
                "figures/fig11_inactive.png"}
    assert expected <= drawn
    logged = {a.path for a in RunReader.open(uri).artifacts(run_id, "figures")}
    assert drawn <= logged
    for path in drawn:
        assert (folder.parent / path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path


def test_forecast_runs_reads_the_transformer_members(made):
    uri, out, _ = made
    result = cli("forecast", "--runs", out["parent_run_id"], "--tracking-uri", uri, "--json")
    assert result.exit_code == 0, result.output
    got = last_json(result.output)
    assert [m["run_id"] for m in got["members"]] == out["run_ids"]
    names = {row["name"] for row in got["indicators"]}
    # the transformer's own series: its token-embedding structure and per-group statistics
    assert {"embedding_cos_structure", "weight_norm", "positional_std",
            "unembed_weight_std"} <= names
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(got["forecast_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["grokexp.role"] == "forecast"


STUDY = SPEC.replace("[sweep]\nseeds = [0, 1]\n", "") + """
[optimize]
n_trials = 2
batch = 2
seeds = 2
n_startup_trials = 2
[optimize.space]
"train.weight_decay" = {low = 0.3, high = 3.0, log = true}
"""


def test_optimize_studies_a_transformer_and_logs_the_best_trials_networks(write_spec,
                                                                         tracking_uri,
                                                                         tmp_path):
    spec = write_spec(STUDY, "study.toml")
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    result = optimize(spec, "--tracking-uri", tracking_uri, "--storage", storage,
                      "--out", str(tmp_path / "out"), "--study", "tf")
    assert result.exit_code == 0, result.output
    trials = load(storage, "tf").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert all(t.value is not None for t in trials)
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("transformer_commands").experiment_id
    parent = client.search_runs([experiment], "tags.`grokexp.role` = 'study'")[0]
    best = parent.data.tags["grokexp.best_trial"]
    runs = {r.data.tags["optuna.trial"]: r
            for r in client.search_runs([experiment], "tags.`grokexp.role` = 'trial'")}
    assert sorted(runs) == ["0", "1"]
    assert runs["0"].data.params["model.architecture"] == "transformer"
    found = client.search_logged_models(
        [experiment], filter_string=f"source_run_id = '{runs[best].info.run_id}'")
    assert len(found) == 2  # one network per seed of the best trial
    assert len(client.search_logged_models([experiment])) == 2  # and none of the other
    pairs = torch.tensor([[a, b] for a in range(P) for b in range(P)])
    logits = [mlflow.pytorch.load_model(m.artifact_location)(pairs) for m in found]
    assert [tuple(x.shape) for x in logits] == [(P * P, P)] * 2
    assert not torch.equal(logits[0], logits[1])  # the two seeds' networks, not one twice
    # each is one seed's network (exported once, the second seed's weights written into the
    # program): the reference transformer on that seed's stored weights gives its logits
    trial_run = runs[best].info.run_id
    seeds = [a.path for a in client.list_artifacts(trial_run, "weights")]
    references = []
    for path in seeds:
        state = torch.load(client.download_artifacts(trial_run, path, str(tmp_path / "w")),
                           weights_only=True)
        with torch.no_grad():
            references.append(ReferenceTransformer.from_member(state, HEADS,
                                                               layer_norm=False)(pairs))
    assert len(references) == 2
    # float32 attention and MLP sums in two orders of evaluation: ulps of logits of order one
    matched = sorted(next(i for i, ref in enumerate(references)
                          if torch.allclose(got.detach(), ref, rtol=0, atol=1e-4))
                     for got in logits)
    assert matched == [0, 1]
