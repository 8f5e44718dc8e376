"""Everything a member logs is the member's alone: the same alone and anywhere in a population.

Training is population-invariant by construction (each member's own generators, its own
slice of every batched op); the measurements must be too. A member trained alone and the
same member at another position in a population of three, beside a member that generalises
early and leaves, must log the same value at every step for every metric key, diagnostics
included, as read back from the MLflow store. On the CPU the comparison is bitwise: every
per-member value is computed from that member's rows alone, in the same order.
"""

from __future__ import annotations

import json

from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from grokexp.cli import main

SPEC = """
name = "invariance"
[task]
modulus = 23
train_fraction = 0.6
[model]
embedding_dim = 32
hidden = 64
[train]
epochs = 240
batch_size = 32
lr = 1e-2
stop_after_generalized = 0
[metrics]
every = 10
mc_dropout_every = 40
mc_samples = 40
drc_epochs = [0, 100, 200]
drc_rates = [0.0, 0.3, 0.9]
drc_samples = 8
heatmap_epochs = [0, 200]
histogram_epochs = [100]
checkpoints = 0
[sweep]
seeds = SEEDS
"""
EARLY, WATCHED = 4, 0  # seed 4 generalises by epoch ~160 and leaves; seed 0 trains on


def _histories(write_spec, tracking_uri: str, seeds: list[int]) -> dict[int, dict]:
    path = write_spec(SPEC.replace("SEEDS", json.dumps(seeds)), f"s{len(seeds)}.toml")
    result = CliRunner().invoke(main, ["run", path, "--tracking-uri", tracking_uri, "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    client = MlflowClient(tracking_uri=tracking_uri)
    by_seed = {}
    for run_id in out["run_ids"]:
        run = client.get_run(run_id)
        series = {key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
                  for key in run.data.metrics}
        by_seed[int(run.data.params["train.seed"])] = series
    return by_seed


def test_a_member_logs_the_same_alone_and_beside_a_member_that_leaves(write_spec,
                                                                      tracking_uri) -> None:
    alone = _histories(write_spec, tracking_uri, [WATCHED])[WATCHED]
    together = _histories(write_spec, tracking_uri, [EARLY, 2, WATCHED])
    early = together[EARLY]
    left_at = max(step for step, _ in early["test_acc"])
    last = max(step for step, _ in alone["test_acc"])
    assert left_at < 200 < last  # the early member left; the watched one went on without it
    watched = together[WATCHED]
    assert set(watched) == set(alone)
    diagnostics = {"mc_dropout_acc_mean", "mc_dropout_acc_var", "drc_acc_r0.3",
                   "embedding_cos_structure", "embedding_bimodality", "inactive_neurons_pct"}
    assert diagnostics <= set(alone)
    for key, series in alone.items():
        assert watched[key] == series, key
    # measured after the early member left as well as before
    assert any(step > left_at for step, _ in alone["mc_dropout_acc_var"])
    assert any(step > left_at for step, _ in alone["drc_acc_r0.3"])
