"""Frozen members read back from a real MLflow store: their ``trainable = false`` param marks
them, and the table then gives the AUC with and without them."""

from __future__ import annotations

import json

from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from grokexp.cli import main

# a + b mod 17, four members: weight decay 0.3 / 1, the embedding trained or frozen
SPEC = """
name = "frozen"
[task]
modulus = 17
train_fraction = 0.8
[model]
embedding_dim = 24
hidden = 48
[train]
epochs = 120
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
"init.embedding.trainable" = [true, false]
"""


def test_frozen_members_come_from_their_params(write_spec, tracking_uri):
    result = CliRunner().invoke(main, ["forecast", write_spec(SPEC), "--tracking-uri",
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
    assert {f["share"] for f in out["forecasts"]} == {0.2, 0.4}
