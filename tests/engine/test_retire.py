"""Members leaving: every per-member structure retires the right rows, and a population that
loses members, is interrupted and resumed ends bitwise where the uninterrupted one does."""

from __future__ import annotations

import pytest
import torch

from grokexp.engine.data import make_splits, pair_table
from grokexp.engine.model import Population
from grokexp.engine.optim import PopulationAdamW
from grokexp.engine.per_member import MemberList, PerMember
from grokexp.engine.reducers import Reducers
from grokexp.engine.sweep import expand_members
from grokexp.engine.train import EvalContext, Hook, Interrupted, _optimizer
from grokexp.run.runner import train_group
from grokexp.spec.io import load_spec
from grokexp.tracking.checkpoint import Checkpoint

CPU = torch.device("cpu")
SPEC = """
name = "retire"
[task]
modulus = 11
[model]
embedding_dim = 8
hidden = 16
[train]
epochs = 24
lr = 1e-2
batch_size = 16
dropout = 0.1
[metrics]
every = 4
"""
# four members: plain, Grokfast EMA, Grokfast MA, ⊥Grad; each its own seed for the first
MIXED = """
[sweep]
variants = [
  {},
  { "train.grad_filter" = { kind = "ema", alpha = 0.9, lamb = 2.0 }, "train.seed" = 1 },
  { "train.grad_filter" = { kind = "ma", window = 3, lamb = 1.0 }, "train.seed" = 2 },
  { "train.orthogonal_grad" = true, "train.seed" = 3 },
]
"""
KEEP = [0, 2, 3]  # position 1 leaves


def _members(extra: str = ""):
    return expand_members(load_spec(SPEC + extra, "r.toml"))


def _rows(t: torch.Tensor, axis: int = 0) -> torch.Tensor:
    return t.index_select(axis, torch.tensor(KEEP))


def test_a_member_list_keeps_the_items_at_the_positions():
    items = MemberList(["a", "b", "c", "d"])
    items.retire(KEEP)
    assert items == ["a", "c", "d"]
    items.retire([])
    assert items == []


def test_every_per_member_structure_retires_the_same_rows():
    members = _members('[sweep]\nvariants = [' + ", ".join(
        f'{{ "train.lr" = {lr}, "train.seed" = {k}, "train.split_seed" = {k}, '
        f'"train.grad_filter" = {{ kind = "ema", alpha = {alpha}, lamb = 2.0 }} }}'
        for k, (lr, alpha) in enumerate([(1e-2, 0.9), (2e-2, 0.8), (3e-2, 0.7),
                                         (4e-2, 0.6)])) + "]\n")
    spec = members[0].spec
    population = Population.from_specs([m.spec for m in members], CPU)
    params = population.params  # the dict the optimiser holds
    optimizer = _optimizer(population, members)
    assert optimizer.params is params and optimizer.reducers is not None
    table = pair_table(spec.task)
    splits = make_splits(spec.task, table, [m.spec.train.split_seed for m in members])
    g = torch.Generator().manual_seed(0)
    for _ in range(3):  # moments, EMA state: something in every row
        optimizer.step({n: torch.randn(p.shape, generator=g) for n, p in params.items()})
    before = {"params": {n: t.detach().clone() for n, t in params.items()},
              "exp_avg": {n: t.clone() for n, t in optimizer.exp_avg.items()},
              "ema": {n: t.clone() for n, t in optimizer.reducers.ema.items()},
              "lr": optimizer.lr.clone(), "alpha": optimizer.reducers.alpha.clone(),
              "train_index": splits.train_index.clone(), "mask": splits.train_mask.clone()}
    assert len(set(optimizer.lr.tolist())) == len(set(optimizer.reducers.alpha.tolist())) == 4
    parts: list[PerMember] = [population, optimizer, splits]
    for part in parts:
        part.retire(KEEP)
    assert population.params is params and population.size == 3
    for name, t in params.items():
        assert t.is_leaf and t.requires_grad
        assert torch.equal(t.detach(), _rows(before["params"][name]))
        assert torch.equal(optimizer.exp_avg[name], _rows(before["exp_avg"][name]))
        assert torch.equal(optimizer.reducers.ema[name], _rows(before["ema"][name]))
    assert torch.equal(optimizer.lr, _rows(before["lr"]))
    assert torch.equal(optimizer.reducers.alpha, _rows(before["alpha"]))
    assert torch.equal(splits.train_index, _rows(before["train_index"]))
    assert torch.equal(splits.train_mask, _rows(before["mask"]))
    optimizer.step({n: torch.ones_like(p) for n, p in params.items()})  # still one piece


def test_reducers_retire_the_moving_average_ring_on_its_member_axis():
    members = _members('[sweep]\nseeds = [0, 1, 2, 3]\n'
                       "[train.grad_filter]\nkind = \"ma\"\nwindow = 2\nlamb = 1.0\n")
    params = {"w": torch.zeros(4, 3)}
    reducers = Reducers(members, params)
    g = torch.Generator().manual_seed(1)
    for step in range(1, 4):
        reducers.filter_({"w": torch.randn(4, 3, generator=g)}, params, step)
    ring, total = reducers.ring["w"].clone(), reducers.window_sum["w"].clone()  # (W, K, 3)
    reducers.retire(KEEP)
    assert torch.equal(reducers.ring["w"], _rows(ring, axis=1))
    assert torch.equal(reducers.window_sum["w"], _rows(total))
    assert reducers.is_ma.tolist() == [True] * 3


class _PruneAt(Hook):
    """Prunes the member at ``index`` at the evaluation of ``epoch``; keeps final weights."""

    def __init__(self, index: int, epoch: int):
        self.index, self.epoch = index, epoch
        self.final: dict[int, dict[str, torch.Tensor]] = {}

    def on_evaluation(self, ctx: EvalContext, values):
        if ctx.epoch == self.epoch and any(m.index == self.index for m in ctx.members):
            ctx.request_stop(self.index, "PRUNED", "test")

    def on_member_end(self, member, history, state):
        self.final[member.index] = state


def _interrupt_after(epochs: int):
    calls = {"n": -1}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] >= epochs
    return should_stop


@pytest.mark.parametrize("stop_epoch", [6, 9])
def test_a_member_leaves_then_the_population_resumes_bitwise(stop_epoch):
    """Member 1 is pruned at epoch 8 (before or after the interruption): the survivors'
    series and final weights equal the uninterrupted run's, bit for bit."""
    grid = _members(MIXED)
    assert [m.spec.train.seed for m in grid] == [0, 1, 2, 3]
    whole_hook = _PruneAt(grid[1].index, 8)
    whole = train_group(grid, CPU, [whole_hook])
    first = _PruneAt(grid[1].index, 8)
    with pytest.raises(Interrupted) as stopped:
        train_group(grid, CPU, [first], should_stop=_interrupt_after(stop_epoch))
    saved = Checkpoint("", "", None, {}, 0, stopped.value.state)  # as written to the store
    state = Checkpoint.from_dict(saved.to_dict()).state
    assert state.epoch == stop_epoch
    assert state.active == ([m.index for m in grid] if stop_epoch < 8
                            else [grid[i].index for i in KEEP])
    second = _PruneAt(grid[1].index, 8)
    resumed = train_group(grid, CPU, [second], resume=state)
    assert whole.by_index(grid[1].index).status == "PRUNED"
    for a, b in zip(whole.members, resumed.members, strict=True):
        facts = ("index", "epochs", "metrics", "status", "train_grok_epoch", "test_grok_epoch",
                 "threshold", "budget")
        assert [getattr(a, f) for f in facts] == [getattr(b, f) for f in facts]
    finals = {**first.final, **second.final}
    assert finals.keys() == whole_hook.final.keys()
    for index, weights in whole_hook.final.items():
        for name, t in weights.items():
            assert torch.equal(t, finals[index][name]), (index, name)


def test_optimizer_retire_leaves_the_weights_to_the_population():
    w = {"w": torch.arange(6.0).reshape(3, 2)}
    opt = PopulationAdamW(w, torch.full((3,), 0.1, dtype=torch.float64),
                          torch.zeros(3, dtype=torch.float64), {"w": torch.ones(3)})
    opt.retire([1])
    assert torch.equal(w["w"], torch.arange(6.0).reshape(3, 2))  # not the optimiser's to cut
    assert opt.lr.shape == (1,) and opt.exp_avg["w"].shape == (1, 2)
