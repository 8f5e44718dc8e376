"""Provenance: each run names its data split as an MLflow data set input and a tag.

The digests are recomputed here from their definition (SHA-256 of the task header and the
sorted training indices as little-endian int64, first 12 hex digits), not by grokexp's own
hashing; grokexp.data only supplies the training indices, from the run's logged params.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import torch
from click.testing import CliRunner
from conftest import TINY
from mlflow.tracking import MlflowClient

from grokexp.cli import main
from grokexp.engine.data import make_splits, pair_table, split_dataset, split_digest
from grokexp.engine.sweep import expand_members
from grokexp.run.runner import run_experiment
from grokexp.spec.io import load_spec
from grokexp.spec.schema import TaskSpec
from grokexp.tracking.mlflow_tracker import MlflowTracker
from grokexp.tracking.tracker import NullTracker

TAG = "grokexp.split_digest"
SWEEP = '\n[sweep]\nseeds = [0, 1]\n"train.split_seed" = [0, 1]\n'


def expected_digest(modulus: int, operation: str, train_fraction: float, split_seed: int,
                    train: list[int]) -> str:
    header = json.dumps({"modulus": modulus, "operation": operation, "split_seed": split_seed,
                         "train_fraction": train_fraction}, sort_keys=True,
                        separators=(",", ":"))
    body = struct.pack(f"<{len(train)}q", *sorted(train))
    return hashlib.sha256(header.encode() + b"\n" + body).hexdigest()[:12]


def digest_from_params(params: dict[str, str]) -> tuple[str, int]:
    """The digest a run should carry, from its logged task and split seed; and N_train."""
    modulus, operation = int(params["task.modulus"]), params["task.operation"]
    fraction, split_seed = float(params["task.train_fraction"]), int(params["train.split_seed"])
    task = TaskSpec(modulus=modulus, operation=operation, train_fraction=fraction)
    train = make_splits(task, pair_table(task), [split_seed]).train_index[0].tolist()
    return expected_digest(modulus, operation, fraction, split_seed, train), len(train)


def the_dataset(run) -> object:
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1, inputs
    tags = {t.key: t.value for t in inputs[0].tags}
    assert tags == {"mlflow.data.context": "training"}
    return inputs[0].dataset


def test_sweep_members_name_their_split_as_a_dataset_and_a_tag(write_spec, tracking_uri):
    spec = write_spec(TINY.replace("epochs = 20", "epochs = 5") + SWEEP)
    result = CliRunner().invoke(main, ["run", spec, "--tracking-uri", tracking_uri, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    client = MlflowClient(tracking_uri=tracking_uri)
    by_split: dict[int, set[str]] = {}
    names = set()
    for member in out["members"]:
        run = client.get_run(member["run_id"])
        dataset = the_dataset(run)
        expected, n_train = digest_from_params(run.data.params)
        assert dataset.digest == expected
        assert run.data.tags[TAG] == dataset.digest
        assert dataset.source_type == "code"
        assert json.loads(dataset.source) == {
            "generator": "grokexp.data.make_splits", "modulus": 11, "operation": "add",
            "train_fraction": 0.5, "split_seed": member["varied"]["train.split_seed"]}
        profile = json.loads(dataset.profile)
        assert profile["train"] == n_train == int(0.5 * 121)
        assert profile["pairs"] == 121 and profile["test"] == 121 - n_train
        assert [c["name"] for c in json.loads(dataset.schema)["mlflow_colspec"]] == [
            "left", "right", "label"]
        names.add(dataset.name)
        by_split.setdefault(member["varied"]["train.split_seed"], set()).add(dataset.digest)
    assert names == {"add-mod11-train0.5"}  # one task: one name, the digest tells splits apart
    assert sorted(by_split) == [0, 1]
    assert all(len(d) == 1 for d in by_split.values())  # the two seeds of a split share it
    assert by_split[0] != by_split[1]
    parent = client.get_run(out["parent_run_id"])
    assert not parent.inputs.dataset_inputs  # its members have different splits


def test_train_fraction_changes_the_dataset_and_a_lone_run_carries_it(write_spec,
                                                                      tracking_uri):
    spec = write_spec(TINY.replace("epochs = 20", "epochs = 5"))
    digests = {}
    for fraction in ("0.5", "0.6"):
        result = CliRunner().invoke(main, ["run", spec, "--tracking-uri", tracking_uri,
                                           "--json", "--set", f"task.train_fraction={fraction}"])
        assert result.exit_code == 0, result.output
        out = json.loads(result.stdout.strip().splitlines()[-1])
        assert out["parent_run_id"] is None
        run = MlflowClient(tracking_uri=tracking_uri).get_run(out["run_ids"][0])
        dataset = the_dataset(run)
        assert dataset.digest == run.data.tags[TAG] == digest_from_params(run.data.params)[0]
        assert dataset.name == f"add-mod11-train{fraction}"
        digests[fraction] = dataset.digest
    assert digests["0.5"] != digests["0.6"]


def test_split_digest_is_the_documented_hash_of_the_training_set():
    task = TaskSpec(modulus=7, operation="div", train_fraction=0.3)
    table = pair_table(task)
    train = make_splits(task, table, [4]).train_index[0]
    expected = expected_digest(7, "div", 0.3, 4, train.tolist())
    assert split_digest(train, task, 4) == expected
    assert split_digest(list(reversed(train.tolist())), task, 4) == expected  # a set
    assert split_dataset(task, 4, table).digest == expected
    assert split_dataset(task, 5).digest != expected
    assert split_digest(train, task, 5) != expected  # the seed is part of the identity
    other_op = TaskSpec(modulus=7, operation="mul", train_fraction=0.3)
    assert split_digest(train, other_op, 4) != expected
    assert split_digest(train[1:], task, 4) != expected
    assert len(expected) == 12 and int(expected, 16) >= 0


def test_null_tracker_records_the_same_dataset_as_the_tag():
    spec = load_spec(TINY.replace("epochs = 20", "epochs = 1") + SWEEP, "tiny.toml")
    tracker = NullTracker()
    result = run_experiment(spec, expand_members(spec), tracker, device=torch.device("cpu"))
    digests = {}
    for member in result.members:
        run = tracker.runs[member.run_id]
        assert len(run["datasets"]) == 1
        assert run["datasets"][0]["digest"] == run["tags"][TAG]
        assert run["datasets"][0]["context"] == "training"
        digests.setdefault(member.varied["train.split_seed"], set()).add(run["tags"][TAG])
    assert [len(v) for v in digests.values()] == [1, 1] and digests[0] != digests[1]


def test_a_dataset_the_store_refused_is_relogged_once(tracking_uri, tmp_path):
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    tracker = MlflowTracker(tracking_uri, "prov", retry_delays=(0.01,),
                            recovery_dir=tmp_path / "rec")
    run_id = tracker.start_run("r", {}, {})
    task = TaskSpec(modulus=5)
    dataset = split_dataset(task, 3)
    with db.open("r+b") as f:
        saved = f.read(100)
        f.seek(0)
        f.write(b"\0" * 100)
    try:
        tracker.log_dataset(run_id, dataset.name, dataset.digest, dataset.source,
                            dataset.schema, dataset.profile)
    finally:
        with db.open("r+b") as f:
            f.write(saved)
    assert tracker.failure is not None and tracker.journal is not None
    folder = tracker.journal.folder
    client = MlflowClient(tracking_uri=tracking_uri)
    assert not client.get_run(run_id).inputs.dataset_inputs
    for attempt in range(2):  # replaying twice: still one input
        if attempt:  # as if the first replay was cut short before it could mark the folder
            (folder / "RELOGGED").unlink()
        relogged = CliRunner().invoke(main, ["relog", str(folder), "--tracking-uri",
                                             tracking_uri])
        assert relogged.exit_code == 0, relogged.output
        assert "1 datasets" in relogged.output
        logged = the_dataset(client.get_run(run_id))
        assert (logged.name, logged.digest, logged.profile) == (
            dataset.name, dataset.digest, dataset.profile)
    train = make_splits(task, pair_table(task), [3]).train_index[0].tolist()
    assert logged.digest == expected_digest(5, "add", 0.5, 3, train)


OPT_SPLITS = """
name = "prov"
[task]
modulus = 11
[model]
embedding_dim = 16
hidden = 32
[train]
epochs = 5
lr = 1e-2
batch_size = 16
[metrics]
every = 5
[optimize]
n_trials = 2
batch = 2
seeds = 2
sampler = "random"
pruner = "none"
[optimize.space]
"train.split_seed" = {choices = [0, 1]}
[[optimize.enqueue]]
"train.split_seed" = 0
[[optimize.enqueue]]
"train.split_seed" = 1
"""


def test_study_trial_runs_carry_their_split(write_spec, tracking_uri, tmp_path):
    spec = write_spec(OPT_SPLITS, "prov.toml")
    result = CliRunner().invoke(main, ["optimize", "--quiet", spec, "--tracking-uri",
                                       tracking_uri, "--out", str(tmp_path / "out")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name("prov")
    parent = client.search_runs([exp.experiment_id], "tags.`grokexp.role` = 'study'")[0]
    trials = client.search_runs([exp.experiment_id],
                                f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    by_split = {}
    for run in trials:
        dataset = the_dataset(run)
        assert run.data.tags[TAG] == dataset.digest == digest_from_params(run.data.params)[0]
        by_split[int(run.data.params["train.split_seed"])] = dataset.digest
    assert sorted(by_split) == [0, 1] and by_split[0] != by_split[1]
    assert TAG not in parent.data.tags
