"""The Fourier progress measures through `grokexp run` into a real MLflow store: logged at
every evaluation epoch on each architecture, the key frequencies tagged, the figure logged;
the last epoch's values equal the numpy reference (test_fourier.py) on the final weights the
run logged; a 'div' run logs none of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from test_fourier import _reference_grid, ref_measures

from grokexp.cli import main
from grokexp.engine.data import make_splits, pair_table
from grokexp.spec.schema import TaskSpec

pytestmark = pytest.mark.usefixtures("one_thread")

P, EPOCHS, N_KEYS = 11, 10, 3
MEASURES = ("fourier_restricted_loss", "fourier_excluded_loss", "fourier_gini")
SPEC = f"""
name = "fourier"
[task]
modulus = {P}
operation = "OPERATION"
[model]
embedding_dim = 6
hidden = 12
[train]
epochs = {EPOCHS}
lr = 1e-2
batch_size = 20
[metrics]
every = 5
mc_dropout = false
drc = false
checkpoints = 0
fourier_frequencies = {N_KEYS}
[tracking]
log_model = false
[[sweep.variants]]
"model.architecture" = "mlp"
[[sweep.variants]]
"model.architecture" = "transformer"
"model.d_model" = 16
"model.n_heads" = 2
"model.d_mlp" = 24
[[sweep.variants]]
"model.architecture" = "onehot_mlp"
"""


def _run(tmp_path: Path, tracking_uri: str, operation: str) -> list[dict]:
    spec = tmp_path / f"{operation}.toml"
    spec.write_text(SPEC.replace("OPERATION", operation))
    result = CliRunner().invoke(main, ["run", str(spec), "--tracking-uri", tracking_uri,
                                       "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])["members"]


def _final_weights(client: MlflowClient, run_id: str, folder: Path) -> dict[str, torch.Tensor]:
    path = client.download_artifacts(run_id, "weights/final.pt", str(folder))
    return torch.load(path, weights_only=True)


def test_a_run_logs_the_measures_at_every_evaluation_on_every_architecture(
        tmp_path, tracking_uri) -> None:
    members = _run(tmp_path, tracking_uri, "add")
    client = MlflowClient(tracking_uri=tracking_uri)
    task = TaskSpec(modulus=P, operation="add")
    table = pair_table(task)
    seen = set()
    for m in members:
        run = client.get_run(m["run_id"])
        arch = run.data.params["model.architecture"]
        seen.add(arch)
        for name in MEASURES:
            assert [x.step for x in client.get_metric_history(run.info.run_id, name)] == \
                [0, 5, 10], (arch, name)
        keys = [int(k) for k in run.data.tags["fourier_key_frequencies"].split(",")]
        assert len(keys) == N_KEYS and keys == sorted(keys) and 1 <= keys[0]
        assert keys[-1] <= P // 2
        assert not any(name.startswith("fourier_key") for name in run.data.metrics)
        figures = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
        assert "figures/fourier_progress.png" in figures
        # the last evaluation is on the final weights: the reference on them and the split
        state = _final_weights(client, run.info.run_id, tmp_path / run.info.run_id)
        name = "transformer" if arch == "transformer" else arch
        acts, logits, embedding = _reference_grid(name, state, P)
        splits = make_splits(task, table, [int(run.data.params["train.split_seed"])])
        pick = [(table.left[i].numpy(), table.right[i].numpy(), table.labels[i].numpy())
                for i in (splits.train_index[0], splits.test_index[0])]
        want = ref_measures(acts, logits, embedding, *pick, N_KEYS)
        assert keys == want["keys"], arch
        for key in MEASURES:
            # float32 forwards (batched in the run, nn.Module here): ~1e-6 relative
            assert run.data.metrics[key] == pytest.approx(want[key], rel=2e-5), (arch, key)
    assert seen == {"mlp", "transformer", "onehot_mlp"}


def test_a_div_run_logs_none_of_them_and_says_so_once(tmp_path, tracking_uri, caplog) -> None:
    with caplog.at_level("WARNING", logger="grokexp.diagnostics.hook"):
        members = _run(tmp_path, tracking_uri, "div")
    client = MlflowClient(tracking_uri=tracking_uri)
    for m in members:
        run = client.get_run(m["run_id"])
        assert not any(name.startswith("fourier") for name in run.data.metrics)
        assert "fourier_key_frequencies" not in run.data.tags
        assert "test_acc" in run.data.metrics
        figures = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
        assert "figures/fourier_progress.png" not in figures
    said = [r for r in caplog.records if "'div'" in r.getMessage()]
    assert len(said) == 1 and "Fourier" in said[0].getMessage()
