"""The fast engine's contract: a member trains as it would alone, and runs repeat exactly.

Tolerance for member-vs-alone: losses within 1e-5 (absolute) and accuracies within one pair.
On CPU with these shapes the histories come out bitwise equal; the tolerance leaves room for
a BLAS that blocks a batched matmul differently from a single one.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from grokexp.engine.data import make_splits, pair_table
from grokexp.engine.model import Population
from grokexp.engine.optim import PopulationAdamW
from grokexp.engine.sweep import expand_members
from grokexp.engine.train import History, TrainData, train
from grokexp.spec.io import validate_spec

BASE: dict[str, Any] = {
    "name": "tiny",
    "task": {"modulus": 11},
    "model": {"embedding_dim": 8, "hidden": 16},
    "train": {"epochs": 24, "batch_size": 16},
    "metrics": {"every": 4},
}


def _run(raw: dict[str, Any]) -> tuple[list, History]:
    spec = validate_spec(raw, "tiny")
    members = expand_members(spec)
    table = pair_table(spec.task)
    splits = make_splits(spec.task, table, [m.spec.train.split_seed for m in members])
    population = Population.from_specs([m.spec for m in members], torch.device("cpu"))
    return members, train(population, members, TrainData(table, splits))


def _with(raw: dict[str, Any], **sections: dict[str, Any]) -> dict[str, Any]:
    out = {**raw}
    for name, values in sections.items():
        out[name] = {**raw.get(name, {}), **values}
    return out


@pytest.mark.parametrize("extra", [
    {},
    {"model": {"hidden": [12, 10], "activation": "gelu", "embedding_activation": "relu"}},
    {"train": {"dropout": 0.2}},
    {"init": {"embedding": {"trainable": False}}},
])
def test_member_trains_as_it_would_alone(extra):
    raw = _with(BASE, **extra)
    raw["sweep"] = {"train.lr": [1e-3, 3e-3], "train.weight_decay": [0.0, 1.0], "seeds": [0, 1]}
    members, together = _run(raw)
    n_pairs = 11 * 11
    for member in members:
        train_values = member.spec.train
        alone_raw = _with(_with(BASE, **extra), train={
            "lr": train_values.lr, "weight_decay": train_values.weight_decay,
            "seed": train_values.seed})
        _, alone = _run(alone_raw)
        mine, solo = together.by_index(member.index), alone.members[0]
        assert mine.epochs == solo.epochs
        for name in ("train_loss", "test_loss"):
            torch.testing.assert_close(mine.metrics[name], solo.metrics[name], rtol=0, atol=1e-5)
        for name in ("train_acc", "test_acc"):
            torch.testing.assert_close(mine.metrics[name], solo.metrics[name], rtol=0,
                                       atol=1.0 / n_pairs)


def test_same_spec_and_seeds_give_identical_histories():
    raw = _with(BASE, sweep={"seeds": [3, 4, 5]}, train={"dropout": 0.1})
    _, first = _run(raw)
    _, second = _run(raw)
    for a, b in zip(first.members, second.members, strict=True):
        assert a.metrics == b.metrics  # bitwise on CPU
        assert a.epochs == b.epochs


def test_training_moves_the_loss_and_differs_between_seeds():
    _, history = _run(_with(BASE, sweep={"seeds": [0, 1]}))
    a, b = history.members
    assert a.metrics["train_loss"][-1] < a.metrics["train_loss"][0]
    assert a.metrics["train_loss"] != b.metrics["train_loss"]


def test_fused_adamw_matches_torch_adamw_per_member():
    """Each member's update is torch.optim.AdamW's with that member's lr and weight decay."""
    g = torch.Generator().manual_seed(0)
    start = {"w": torch.randn(3, 5, 4, generator=g), "b": torch.randn(3, 4, generator=g)}
    lrs, wds = [1e-2, 3e-2, 1e-2], [1.0, 0.0, 0.5]
    ours = {n: t.clone() for n, t in start.items()}
    trainable = {"w": torch.ones(3), "b": torch.tensor([1.0, 1.0, 0.0])}  # member 2's b frozen
    for fused in (True, False):
        ours = {n: t.clone() for n, t in start.items()}
        opt = PopulationAdamW(ours, torch.tensor(lrs, dtype=torch.float64),
                              torch.tensor(wds, dtype=torch.float64), trainable, fused=fused)
        refs = [{n: t[k].clone().requires_grad_(True) for n, t in start.items()}
                for k in range(3)]
        torch_opts = [torch.optim.AdamW(list(r.values()), lr=lrs[k], weight_decay=wds[k])
                      for k, r in enumerate(refs)]
        for _ in range(5):
            grads = {n: torch.randn(t.shape, generator=g) for n, t in start.items()}
            opt.step(grads)
            for k, (ref, topt) in enumerate(zip(refs, torch_opts, strict=True)):
                for n, p in ref.items():
                    p.grad = grads[n][k].clone() if trainable[n][k] else None
                topt.step()
        for k, ref in enumerate(refs):
            for n, p in ref.items():
                torch.testing.assert_close(ours[n][k], p.detach(), rtol=1e-6, atol=1e-7)
        assert torch.equal(ours["b"][2], start["b"][2])
