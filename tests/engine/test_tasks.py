"""The tasks' tables against plain Python written from their definitions, and tiny runs of
each architecture on S5 and on a polynomial task, read back from a real MLflow store."""

from __future__ import annotations

import json
import logging
import shutil
from itertools import permutations
from pathlib import Path

import pytest
import torch
from arch.reference_onehot import ReferenceOneHotMlp
from arch.reference_transformer import ReferenceTransformer
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from reference import PaperMLP

from grokexp.cli import main
from grokexp.engine.data import make_splits, pair_table
from grokexp.spec.io import validate_spec
from grokexp.spec.schema import TaskSpec

pytestmark = pytest.mark.usefixtures("one_thread")

PERMS = list(permutations(range(5)))  # token n is PERMS[n]
NOT_RESIDUES = ("the tokens are not residues mod P (s5): the embedding's codiagonal structure "
                "and Fourier share are not measured")


def reference_labels(operation: str, p: int) -> dict[tuple[int, int], int]:
    """(i, j) → label, from the definition, in Python ints."""
    out = {}
    for i in range(p):
        for j in range(p):
            if operation == "add":
                out[i, j] = (i + j) % p
            elif operation == "sub":
                out[i, j] = (i - j) % p
            elif operation == "mul":
                out[i, j] = (i * j) % p
            elif operation == "div" and j != 0:
                inverse = next(b for b in range(1, p) if (b * j) % p == 1)
                out[i, j] = (i * inverse) % p
            elif operation == "x**2+y**2":
                out[i, j] = (i * i + j * j) % p
            elif operation == "x**2+x*y+y**2":
                out[i, j] = (i * i + i * j + j * j) % p
            elif operation == "x**3+x*y":
                out[i, j] = (i * i * i + i * j) % p
    return out


def s5_labels() -> dict[tuple[int, int], int]:
    """(a, b) → the index of a∘b, (a∘b)(x) = a[b[x]], composed by hand."""
    out = {}
    for n, a in enumerate(PERMS):
        for m, b in enumerate(PERMS):
            out[n, m] = PERMS.index(tuple(a[b[x]] for x in range(5)))
    return out


def as_dict(task: TaskSpec) -> dict[tuple[int, int], int]:
    table = pair_table(task)
    pairs = list(zip(table.left.tolist(), table.right.tolist(), strict=True))
    assert len(set(pairs)) == len(pairs) == table.size  # each pair once
    return dict(zip(pairs, table.labels.tolist(), strict=True))


@pytest.mark.parametrize("operation", ["add", "sub", "mul", "x**2+y**2", "x**2+x*y+y**2",
                                       "x**3+x*y", "div"])
def test_every_arithmetic_label_is_its_definition(operation):
    moduli = (7, 13) if operation == "div" else (7, 12)  # div needs a prime; 12 is not one
    for p in moduli:
        task = TaskSpec(modulus=p, operation=operation)
        assert task.tokens == p and task.residues
        assert as_dict(task) == reference_labels(operation, p)  # every pair, every label


def test_s5_is_the_composition_of_permutations():
    task = validate_spec({"name": "s5", "task": {"operation": "s5"}}, "s5.toml").task
    table = pair_table(task)
    assert table.size == 14_400 and table.modulus == task.tokens == 120
    assert not table.residues and not task.residues
    assert as_dict(task) == s5_labels()
    square = torch.zeros(120, 120, dtype=torch.long)
    square[table.left, table.right] = table.labels
    everything = list(range(120))
    assert sorted(set(table.labels.tolist())) == everything  # 120 classes
    for n in range(120):  # a Latin square: each row and column a permutation of the tokens
        assert sorted(square[n].tolist()) == everything
        assert sorted(square[:, n].tolist()) == everything
    identity = PERMS.index((0, 1, 2, 3, 4))
    assert identity == 0
    assert square[identity].tolist() == everything == square[:, identity].tolist()
    assert not torch.equal(square, square.T)  # not abelian


TINY_METRICS = """
[metrics]
every = 1
mc_samples = 2
drc = false
heatmap_epochs = [0]
histogram_epochs = [0]
checkpoints = 0
[tracking]
log_model = false
"""
TRANSFORMER = """
[model]
architecture = "transformer"
d_model = 16
n_heads = 2
d_mlp = 32
"""
ONEHOT = '[model]\narchitecture = "onehot_mlp"\nhidden = 32\n'
MLP = "[model]\nembedding_dim = 8\nhidden = 32\n"
EPOCHS = 3


def run_one(folder: Path, store: Path, task: str, model: str) -> tuple[MlflowClient, dict]:
    (folder / "mlruns").mkdir(parents=True)
    shutil.copy(store, folder / "mlruns" / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"
    spec = folder / "spec.toml"
    spec.write_text(f'name = "tasks"\n[task]\n{task}\n{model}\n[train]\nepochs = {EPOCHS}\n'
                    f"lr = 1e-2\nbatch_size = 512\n{TINY_METRICS}")
    result = CliRunner().invoke(main, ["run", str(spec), "--tracking-uri", uri, "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return MlflowClient(tracking_uri=uri), json.loads(result.output.strip().splitlines()[-1])


def check_accuracy(client: MlflowClient, out: dict, net: torch.nn.Module, task: TaskSpec,
                   answers: dict[tuple[int, int], int], folder: Path) -> dict[str, float]:
    """The logged final accuracies are those of the final weights, recomputed by a plain
    forward on labels written from the definition."""
    (member,) = out["members"]
    run_id = member["run_id"]
    table = pair_table(task)
    pairs = torch.stack([table.left, table.right], 1)
    labels = torch.tensor([answers[i, j] for i, j in pairs.tolist()])
    is_train = torch.zeros(len(pairs), dtype=torch.bool)
    is_train[make_splits(task, table, [0]).train_index[0]] = True
    with torch.no_grad():
        logits = net(pairs) if not isinstance(net, PaperMLP) else net(pairs[:, 0], pairs[:, 1])
    right = (logits.argmax(1) == labels).float()
    logged = client.get_run(run_id).data.metrics
    assert [m.step for m in client.get_metric_history(run_id, "test_acc")] == list(
        range(EPOCHS + 1))
    # another forward may round a near tie between two logits the other way: one pair
    n_train, n_test = int(is_train.sum()), int((~is_train).sum())
    assert abs(float(right[is_train].mean()) - logged["train_acc"]) <= 1 / n_train + 1e-9
    assert abs(float(right[~is_train].mean()) - logged["test_acc"]) <= 1 / n_test + 1e-9
    assert logged["test_acc"] == member["final_test_acc"]
    return logged


def final_state(client: MlflowClient, out: dict, folder: Path) -> dict[str, torch.Tensor]:
    run_id = out["members"][0]["run_id"]
    path = client.download_artifacts(run_id, "weights/final.pt", str(folder / "dl"))
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize("architecture", ["transformer", "onehot_mlp"])
def test_s5_trains_and_logs_its_accuracy(architecture, tmp_path, migrated_store, caplog):
    model = TRANSFORMER if architecture == "transformer" else ONEHOT
    with caplog.at_level(logging.WARNING):
        client, out = run_one(tmp_path, migrated_store, 'operation = "s5"', model)
    said = [r.getMessage() for r in caplog.records if r.name.startswith("grokexp")]
    assert said.count(NOT_RESIDUES) == 1, said  # once, though measured at every epoch
    state = final_state(client, out, tmp_path)
    net = (ReferenceTransformer.from_member(state, 2, layer_norm=False)
           if architecture == "transformer" else ReferenceOneHotMlp.from_member(state))
    task = TaskSpec(operation="s5")
    logged = check_accuracy(client, out, net, task, s5_labels(), tmp_path)
    params = client.get_run(out["members"][0]["run_id"]).data.params
    assert params["task.operation"] == "s5" and "task.modulus" not in params
    assert "embedding_fourier_share" not in logged  # S5 is not Z_P: not measured
    assert "embedding_cos_structure" not in logged
    if architecture == "transformer":  # it has a token embedding: its shape is measured
        assert "embedding_bimodality" in logged


def test_a_polynomial_task_trains_with_the_mlp(tmp_path, migrated_store):
    client, out = run_one(tmp_path, migrated_store,
                          'modulus = 11\noperation = "x**2+x*y+y**2"', MLP)
    state = final_state(client, out, tmp_path)
    assert state["embedding"].shape == (11, 8)
    task = TaskSpec(modulus=11, operation="x**2+x*y+y**2")
    logged = check_accuracy(client, out, PaperMLP.from_state(state), task,
                            reference_labels("x**2+x*y+y**2", 11), tmp_path)
    assert "embedding_fourier_share" in logged  # residues mod P: measured as for add


def test_a_sweep_over_operations_gives_s5_no_modulus():
    """A sweep from an arithmetic base to 's5' drops the base's P (s5 has none); the
    arithmetic member keeps it."""
    from grokexp.engine.sweep import expand_members

    spec = validate_spec({"name": "ops", "task": {"modulus": 11},
                          "sweep": {"task.operation": ["add", "s5"]}}, "x.toml")
    members = expand_members(spec, "x.toml")
    by_operation = {m.spec.task.operation: m.spec.task for m in members}
    assert by_operation["add"].modulus == 11 and by_operation["add"].tokens == 11
    assert by_operation["s5"].modulus is None and by_operation["s5"].tokens == 120


def test_a_study_over_operations_checks_s5_without_the_bases_modulus():
    """An optimize space choosing 's5' passes its check and gives s5 trials no modulus."""
    from grokexp.study.space import check_space, point_spec

    spec = validate_spec({"name": "ops", "task": {"modulus": 11}, "optimize": {
        "space": {"task.operation": {"choices": ["add", "s5"]}}}}, "x.toml")
    check_space(spec, "x.toml")  # raises SpecError naming task.modulus without the rule
    s5 = point_spec(spec, {"task.operation": "s5"}, "x.toml")
    assert s5.task.modulus is None and s5.task.tokens == 120
    assert point_spec(spec, {"task.operation": "add"}, "x.toml").task.modulus == 11
