"""`grokexp figures` on a run whose saved weights are damaged: one line naming the file and
what is wrong with it, exit 2; never a traceback, never exit 0 with nothing drawn.

The runs are real (a tiny sweep, one member per damage); each damage overwrites one artifact
file on disk in the store's artifacts folder, as a truncated upload or a hand edit would.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import torch
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from grokexp.cli import main

DAMAGES = ["truncated", "stray file", "stray folder", "not a dict", "wrong shape",
           "unknown parameter", "missing parameter", "not a tensor", "final truncated"]


@pytest.fixture(scope="module")
def damaged_runs(tmp_path_factory, migrated_store):
    """A tiny sweep of one member per damage; each member's files damaged on disk."""
    from conftest import TINY

    folder = tmp_path_factory.mktemp("damaged")
    store = folder / "mlruns" / "mlflow.db"
    store.parent.mkdir()
    shutil.copy(migrated_store, store)
    uri = f"sqlite:///{store}"
    spec = folder / "tiny.toml"
    spec.write_text(TINY + f"[sweep]\nseeds = {list(range(len(DAMAGES)))}\n")
    result = CliRunner().invoke(main, ["run", str(spec), "--tracking-uri", uri, "--json"])
    assert result.exit_code == 0, result.output
    run_ids = json.loads(result.stdout)["run_ids"]
    client = MlflowClient(tracking_uri=uri)
    for damage, run_id in zip(DAMAGES, run_ids, strict=True):
        root = Path(unquote(urlsplit(client.get_run(run_id).info.artifact_uri).path))
        checkpoints = sorted((root / "checkpoints").glob("epoch_*.pt"))
        assert checkpoints, f"the run wrote no checkpoints under {root}"
        first = checkpoints[0]
        state = torch.load(first, weights_only=True)
        if damage == "truncated":
            first.write_bytes(first.read_bytes()[:100])
        elif damage == "stray file":
            (root / "checkpoints" / "notes.txt").write_text("mine")
        elif damage == "stray folder":
            (root / "checkpoints" / "old").mkdir()
            shutil.copy(first, root / "checkpoints" / "old" / first.name)
        elif damage == "not a dict":
            torch.save([state["embedding"]], first)
        elif damage == "wrong shape":
            torch.save({**state, "embedding": state["embedding"][:, :3]}, first)
        elif damage == "unknown parameter":
            torch.save({**state, "hidden.7.weight": state["hidden.0.weight"]}, first)
        elif damage == "missing parameter":
            torch.save({k: v for k, v in state.items() if k != "output.bias"}, first)
        elif damage == "not a tensor":
            torch.save({**state, "embedding": 3.0}, first)
        elif damage == "final truncated":
            final = root / "weights" / "final.pt"
            final.write_bytes(final.read_bytes()[:100])
    return uri, dict(zip(DAMAGES, run_ids, strict=True))


EXPECTED = {
    "truncated": "checkpoints/epoch_000000.pt: not a saved network (",
    "stray file": "checkpoints/notes.txt: not a checkpoint",
    "stray folder": "checkpoints/old: not a checkpoint",
    "not a dict": "checkpoints/epoch_000000.pt: not a saved network (holds a list)",
    "wrong shape": "checkpoints/epoch_000000.pt: parameter 'embedding' has shape (11, 3), "
                   "the spec's network (11, 16)",
    "unknown parameter": "checkpoints/epoch_000000.pt: unknown parameter 'hidden.7.weight'",
    "missing parameter": "checkpoints/epoch_000000.pt: parameter 'output.bias' missing",
    "not a tensor": "checkpoints/epoch_000000.pt: parameter 'embedding' is not a "
                    "floating-point tensor",
    "final truncated": "weights/final.pt: not a saved network (",
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_figures_refuses_a_damaged_checkpoint_in_one_line(damaged_runs, damage):
    uri, run_ids = damaged_runs
    run_id = run_ids[damage]
    result = CliRunner().invoke(main, ["figures", run_id, "--tracking-uri", uri])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    assert result.stdout == "", result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: run {run_id}: {EXPECTED[damage]}"), lines[0]
