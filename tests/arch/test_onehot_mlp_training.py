"""A one-hot MLP member trained by grokexp (a population, autograd over the batched forward,
the population's AdamW) against the reference (reference_onehot.py) trained the textbook way
with ``torch.optim.AdamW``, and against itself trained alone; ``embedding_lr_scale`` acts on
the first layer only."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from reference import reference_training as shared_training
from reference_onehot import ReferenceOneHotMlp

from grokexp.engine.data import make_splits, pair_table
from grokexp.engine.init import init_member
from grokexp.engine.model import Population
from grokexp.engine.sweep import Member, expand_members
from grokexp.engine.train import TrainData, train
from grokexp.spec.io import validate_spec
from grokexp.spec.schema import Spec

P = 7
METRICS = ("train_acc", "test_acc", "train_loss", "test_loss")
# float32: the gather-and-add against the one-hot matmul and autograd's own reductions round
# differently by ~1e-7 per op; 50 AdamW steps (whose update divides by sqrt(v)) carry that
# into losses and weights of order 1 (seen here: at most 5e-7); 2e-5 leaves room for another
# BLAS and is far below what an lr off by the embedding scale does (checked below)
ATOL = 2e-5


def raw_spec(hidden: int | list[int], activation: str, **sweep: Any) -> dict[str, Any]:
    # 49 pairs, half to train (24): batches of 12 are 2 steps an epoch, 25 epochs 50 steps
    return {"name": "onehot", "task": {"modulus": P},
            "model": {"architecture": "onehot_mlp", "hidden": hidden, "activation": activation},
            "train": {"epochs": 25, "batch_size": 12, "lr": 1e-2, "weight_decay": 1.0,
                      "betas": [0.9, 0.98]},
            "metrics": {"every": 5}, "sweep": sweep or {"seeds": [0, 1, 2]}}


def reference_training(spec: Spec) -> tuple[dict[str, list[float]], ReferenceOneHotMlp]:
    """One member trained the textbook way (tests/reference.py's loop): grokexp gives only the
    initial weights, the split and the batch order. The first layer's lr is
    ``lr × embedding_lr_scale`` (its own param group: the decoupled decay uses it too)."""
    t = spec.train
    net = ReferenceOneHotMlp.from_member(init_member(spec), spec.model.activation)

    def groups(net: ReferenceOneHotMlp) -> list[dict[str, Any]]:
        first = net.hidden[0].weight
        rest = [w for w in net.parameters() if w is not first]
        return [{"params": [first], "lr": t.lr * t.embedding_lr_scale}, {"params": rest}]

    return shared_training(spec, net, net, groups), net


def grokexp_training(members: list[Member]) -> tuple[Any, Population]:
    spec = members[0].spec
    table = pair_table(spec.task)
    splits = make_splits(spec.task, table, [m.spec.train.split_seed for m in members])
    population = Population.from_specs([m.spec for m in members], torch.device("cpu"))
    return train(population, members, TrainData(table, splits)), population


def assert_final_weights(population: Population, position: int, net: ReferenceOneHotMlp
                         ) -> None:
    """The population keeps every member (none groks in 50 steps): member ``position``'s
    weights equal the reference's."""
    final = dict(net.named_parameters())
    for name, value in population.params.items():
        theirs = final[name].detach()
        theirs = theirs.T if name.endswith("weight") else theirs  # nn.Linear is (out, in)
        torch.testing.assert_close(value[position].detach(), theirs, rtol=0, atol=ATOL,
                                   msg=name)


def assert_history_close(ours: Any, reference: dict[str, list[float]]) -> None:
    assert ours.epochs == reference["epochs"]
    for name in ("train_loss", "test_loss"):
        gap = max(abs(x - y) for x, y in zip(ours.metrics[name], reference[name], strict=True))
        assert gap < ATOL, (name, gap)
    for name in ("train_acc", "test_acc"):
        gap = max(abs(x - y) for x, y in zip(ours.metrics[name], reference[name], strict=True))
        assert gap <= 1 / 24 + 1e-6, name  # one pair at most (a near tie may flip)


@pytest.mark.parametrize("hidden,activation", [([8, 8], "relu"), (16, "gelu")])
def test_member_equals_reference_adamw_and_itself_alone(hidden, activation):
    members = expand_members(validate_spec(raw_spec(hidden, activation), "onehot"))
    assert len(members) == 3
    together, population = grokexp_training(members)
    chosen = members[1]
    alone, _ = grokexp_training([Member(0, chosen.spec, chosen.varied)])
    ours, theirs = together.by_index(chosen.index), alone.members[0]
    assert ours.epochs == theirs.epochs == [0, 5, 10, 15, 20, 25]
    for name in METRICS:  # bitwise on the CPU: members never mix
        assert ours.metrics[name] == theirs.metrics[name], name

    reference, net = reference_training(chosen.spec)
    assert reference["train_loss"][-1] < 0.8 * reference["train_loss"][0]  # it did learn
    assert_history_close(ours, reference)
    assert population.params["output.weight"].shape[0] == 3
    assert_final_weights(population, 1, net)


def test_embedding_lr_scale_acts_on_the_first_layer_only():
    raw = raw_spec([8, 8], "relu", **{"train.embedding_lr_scale": [1.0, 4.0]})
    members = expand_members(validate_spec(raw, "onehot"))
    assert [m.spec.train.embedding_lr_scale for m in members] == [1.0, 4.0]
    history, population = grokexp_training(members)
    for position, chosen in enumerate(members):
        reference, net = reference_training(chosen.spec)
        assert_history_close(history.by_index(chosen.index), reference)
        assert_final_weights(population, position, net)
    # the scale made a difference far beyond the tolerance (so the check above can fail)
    first = population.params["hidden.0.weight"].detach()
    assert (first[1] - first[0]).abs().max() > 100 * ATOL
