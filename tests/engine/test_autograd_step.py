"""The generic autograd step against the paper's MLP's hand-written step (its fast path).

Both compute the gradient of the sum over members of each member's mean cross-entropy; the
hand-written one is itself held against autograd through the forward in test_step.py. Here
the generic path must give the same gradients on the same batches and masks, and training a
population through it (an MLP that turns its fast path off) must follow the fast path.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from grokexp.engine.arch.mlp import MlpArch
from grokexp.engine.autograd_step import AutogradStep
from grokexp.engine.data import make_splits, pair_table
from grokexp.engine.model import Population
from grokexp.engine.step import TrainStep
from grokexp.engine.sweep import expand_members
from grokexp.engine.train import Hook, TrainData, train
from grokexp.engine.workers import training_step
from grokexp.spec.io import validate_spec

P = 7
# float32 sums over a few pairs in another order (bmm vs. autograd's own reductions): a few
# ulps of each gradient's size, far below the gradients themselves (order 0.1)
TOL = {"rtol": 1e-5, "atol": 1e-6}


@dataclasses.dataclass(frozen=True)
class AutogradMlp(MlpArch):
    """The paper's MLP with its hand-written step turned off: it trains through autograd."""

    @property
    def hand_written_step(self) -> bool:
        return False


def _params(arch: MlpArch, k: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {p.name: torch.randn((k, *p.shape), generator=g) * 0.5 for p in arch.layout()}


def _batch(k: int, n: int, seed: int = 1) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    left = torch.randint(0, P, (k, n), generator=g)
    right = torch.randint(0, P, (k, n), generator=g)
    return left, right, (left + right) % P


def _replaying(masks: list[torch.Tensor]):
    """Masks drawn once, handed out again in the same order (the same dropout twice)."""
    queue = iter(masks)
    return lambda site, shape: next(queue)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("embedding_activation", ["none", "relu"])
@pytest.mark.parametrize("dropout", [False, True])
def test_autograd_step_equals_the_hand_written_step(activation, embedding_activation, dropout):
    arch = MlpArch(P, 6, (12, 10), activation, embedding_activation)
    k, n, size = 3, 11, 4  # batches of 4, 4 and a short last one of 3
    params = _params(arch, k)
    left, right, labels = _batch(k, n)
    fast, generic = TrainStep(arch, params, size), AutogradStep(arch, params, size)
    fast_plan, generic_plan = fast.plan(left, right, labels), generic.plan(left, right, labels)
    assert [b.size for b in generic_plan] == [b.size for b in fast_plan] == [4, 4, 3]
    g = torch.Generator().manual_seed(2)
    for index, (a, b) in enumerate(zip(fast_plan, generic_plan, strict=True)):
        drawn = [(torch.rand((k, *shape), generator=g) >= 0.3).float() / 0.7
                 for _, shape in arch.mask_shapes(b.size)] if dropout else []
        fast.step(params, a, _replaying(drawn) if dropout else None)
        generic.step(params, b, _replaying(drawn) if dropout else None)
        for name in params:
            torch.testing.assert_close(generic.grads[name], fast.grads[name], **TOL,
                                       msg=f"{name} in batch {index}")
        assert generic.grads["output.weight"].abs().sum() > 0


def _population(arch_type: type[MlpArch], dropout: float):
    raw = {"name": "a", "task": {"modulus": P}, "model": {"embedding_dim": 6, "hidden": 12},
           "train": {"epochs": 4, "batch_size": 8, "lr": 1e-2, "dropout": dropout,
                     "embedding_lr_scale": 2.0},
           "sweep": {"seeds": [0, 1, 2]}}
    members = expand_members(validate_spec(raw, "a"))
    population = Population.from_specs([m.spec for m in members], torch.device("cpu"))
    arch = population.arch
    assert isinstance(arch, MlpArch)
    population.arch = arch_type(arch.modulus, arch.embedding_dim, arch.hidden,
                                arch.activation, arch.embedding_activation)
    table = pair_table(members[0].spec.task)
    splits = make_splits(members[0].spec.task, table, [m.spec.train.split_seed for m in members])
    return population, members, TrainData(table, splits)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_a_population_trained_through_autograd_follows_the_fast_path(dropout):
    weights = {}
    for arch_type in (MlpArch, AutogradMlp):
        population, members, data = _population(arch_type, dropout)
        final: dict[int, dict[str, torch.Tensor]] = {}
        train(population, members, data, [_Capture(final)])
        weights[arch_type] = final
    fast, generic = weights[MlpArch], weights[AutogradMlp]
    assert sorted(fast) == sorted(generic) == [0, 1, 2]
    for index in fast:
        for name, value in fast[index].items():
            # 4 epochs of AdamW on gradients equal to a few ulps: measured 1.2e-7 apart; the
            # bound leaves room for other BLAS orders, far below one step (lr 1e-2)
            torch.testing.assert_close(generic[index][name], value, rtol=1e-5, atol=1e-6,
                                       msg=f"member {index}: {name}")


def test_training_step_picks_the_fast_path_only_where_it_is_written():
    population, _, _ = _population(MlpArch, 0.0)
    assert isinstance(training_step(population, population.params, 8), TrainStep)
    population.arch = AutogradMlp(P, 6, (12,))
    assert isinstance(training_step(population, population.params, 8), AutogradStep)


class _Capture(Hook):
    """Keeps each member's final weights."""

    def __init__(self, into: dict[int, dict[str, torch.Tensor]]):
        self.into = into

    def on_member_end(self, member, history, state):
        self.into[member.index] = state
