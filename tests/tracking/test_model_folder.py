"""Networks of one kind are exported once: each later one is the first's program with its own
weights, and a network that differs in anything but its weights is exported anew.

The networks here are plain ``nn.Module``s written in the test (not grokexp's twins); each
saved folder is loaded back with MLflow alone and must give its own network's logits.
``torch.export.export`` is the real one, counted (conftest's ``torch_exports``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow.pytorch
import numpy as np
import torch
from mlflow.models import Model
from torch import nn

from grokexp.tracking.model_folder import ModelFolders

PAIRS = torch.tensor([[a, b] for a in range(5) for b in range(5)])
EXAMPLE = PAIRS[:8].numpy()


class Plain(nn.Module):
    """Two embedded operands, concatenated, one linear layer; a buffer outside the weights."""

    def __init__(self, seed: int, width: int = 4, offset: float = 0.0):
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Embedding(5, 3)
        self.out = nn.Linear(6, width)
        self.register_buffer("offset", torch.tensor(offset), persistent=False)

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        return self.out(self.embed(pairs).flatten(1)) + self.offset


def saved(folders: ModelFolders, module: nn.Module, where: Path, kind: object | None) -> Path:
    folder = where / f"model-{len(list(where.iterdir()))}"
    folders.save(module, str(folder), EXAMPLE, kind)
    return folder


def logits_of(folder: Path) -> torch.Tensor:
    with torch.no_grad():
        return mlflow.pytorch.load_model(str(folder))(PAIRS)


def own_logits(module: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return module.eval()(PAIRS)


def test_one_export_for_a_kind_and_each_folder_has_its_own_weights(tmp_path, torch_exports):
    folders, kind = ModelFolders(), object()
    networks = [Plain(seed) for seed in range(3)]
    paths = [saved(folders, net, tmp_path, kind) for net in networks]
    assert len(torch_exports) == 1
    for net, path in zip(networks, paths, strict=True):
        # the exported graph and the eager module may order a sum differently: float32 ulps
        torch.testing.assert_close(logits_of(path), own_logits(net), rtol=0, atol=1e-6)
    assert not torch.equal(logits_of(paths[1]), logits_of(paths[2]))
    described = [Model.load(str(p / "MLmodel")) for p in paths]
    assert len({d.model_uuid for d in described}) == 3
    assert {d.model_size_bytes for d in described} == {described[0].model_size_bytes}
    assert {d.signature.to_dict()["outputs"] for d in described} == {
        described[0].signature.to_dict()["outputs"]}
    for name in ("input_example.json", "requirements.txt", "conda.yaml"):
        assert (paths[2] / name).read_bytes() == (paths[0] / name).read_bytes()


def test_another_input_example_means_a_new_export(tmp_path, torch_exports):
    folders, kind = ModelFolders(), object()
    first = tmp_path / "first"
    folders.save(Plain(0), str(first), EXAMPLE, kind)
    other_example = (PAIRS[-8:]).numpy()  # same shape, other pairs
    second = tmp_path / "second"
    folders.save(Plain(1), str(second), other_example, kind)
    assert len(torch_exports) == 2
    assert ((second / "input_example.json").read_bytes()
            != (first / "input_example.json").read_bytes())


def test_a_failing_shortcut_falls_back_to_a_full_export(tmp_path, torch_exports, monkeypatch):
    """When writing the program with a member's weights fails (here ``torch.export.save``
    raises once, as on a full disk), that member is exported in full, and so is the rest of
    its kind; every folder still holds its own network."""
    folders, kind = ModelFolders(), object()
    networks = [Plain(seed) for seed in range(4)]
    paths = [saved(folders, networks[0], tmp_path, kind)]
    real, failures = torch.export.save, []

    def failing_once(*args, **kwargs):
        if not failures:
            failures.append(1)
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.export, "save", failing_once)
    paths += [saved(folders, net, tmp_path, kind) for net in networks[1:]]
    assert failures == [1] and len(torch_exports) == 4
    for net, path in zip(networks, paths, strict=True):
        torch.testing.assert_close(logits_of(path), own_logits(net), rtol=0, atol=1e-6)


def test_a_new_kind_removes_the_last_kinds_kept_copy(tmp_path, torch_exports, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out = tmp_path / "out"
    out.mkdir()
    folders = ModelFolders()
    for kind in (object(), object(), object()):
        for seed in range(2):
            saved(folders, Plain(seed), out, kind)
    assert len(torch_exports) == 3
    [kept] = list(scratch.glob("grokexp-models-*"))
    assert len(list(kept.iterdir())) == 1  # the last kind's copy alone


def test_anything_but_the_weights_differing_means_a_new_export(tmp_path, torch_exports):
    folders, kind = ModelFolders(), object()
    cases = [Plain(0), Plain(1, width=5),  # another shape
             Plain(2, width=5, offset=3.0),  # a buffer outside the weights
             Plain(3, width=5, offset=3.0)]  # as the one before: no export
    paths = [saved(folders, net, tmp_path, kind) for net in cases]
    assert len(torch_exports) == 3
    paths.append(saved(folders, Plain(4, width=5, offset=3.0), tmp_path, object()))  # new kind
    paths.append(saved(folders, Plain(5, width=5, offset=3.0), tmp_path, None))  # no kind
    assert len(torch_exports) == 5
    for net, path in zip([*cases, Plain(4, width=5, offset=3.0), Plain(5, width=5, offset=3.0)],
                         paths, strict=True):
        torch.testing.assert_close(logits_of(path), own_logits(net), rtol=0, atol=1e-6)
    assert np.isclose(own_logits(cases[2]) - own_logits(Plain(2, width=5)), 3.0).all()
