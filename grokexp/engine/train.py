"""The training loop: every member of a population in lockstep, evaluated on a cadence.

``train(population, members, data, hooks) -> History`` never imports mlflow and never reads
files; whatever should happen at an evaluation (logging, progress, extra metrics, pruning)
comes in through hooks. Members that finish (generalised and held, diverged, pruned) leave the
population; the rest go on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..series import MemberSeries
from .accuracy import accuracy_and_loss
from .data import PairTable, Splits
from .init import layer_of
from .model import DropoutMasks, Population, logits
from .optim import PopulationAdamW
from .reducers import build_reducers
from .seeding import generator_for
from .sweep import Member
from .workers import ShardedTrainer

__all__ = ["History", "MemberSeries", "EvalContext", "Hook", "train", "TrainData",
           "LoopState", "Interrupted"]


@dataclass
class LoopState:
    """Everything the loop needs to go on exactly where it stopped, as CPU tensors.

    ``epoch`` is the last completed epoch; ``active`` the member indices still training, in
    population order; ``histories`` every member of the population, finished or not.
    """

    epoch: int
    active: list[int]
    params: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    order_states: list[torch.Tensor]
    dropout_states: list[torch.Tensor]
    histories: list[MemberSeries]


class Interrupted(Exception):  # a control-flow signal, not an error
    """The loop stopped between epochs because ``should_stop`` said so; carries its state."""

    def __init__(self, state: LoopState):
        super().__init__(f"stopped after epoch {state.epoch}")
        self.state = state


@dataclass
class History:
    members: list[MemberSeries]

    def by_index(self, index: int) -> MemberSeries:
        return next(m for m in self.members if m.index == index)


@dataclass(frozen=True)
class TrainData:
    table: PairTable
    splits: Splits


@dataclass
class EvalContext:
    """What a hook sees at an evaluation. Position p is member ``members[p]``."""

    epoch: int
    population: Population
    members: list[Member]
    data: TrainData
    histories: list[MemberSeries]
    stop_requests: dict[int, tuple[str, str]] = field(default_factory=dict)

    def request_stop(self, member_index: int, status: str = "PRUNED", reason: str = "") -> None:
        """Ask the loop to retire a member after this evaluation (e.g. an Optuna prune)."""
        self.stop_requests[member_index] = (status, reason)


class Hook:
    """Override what you need; every method is optional."""

    def metrics(self, ctx: EvalContext) -> dict[str, torch.Tensor]:
        """Extra per-member metrics, each a (K,) tensor, merged into the evaluation."""
        return {}

    def on_evaluation(self, ctx: EvalContext, values: dict[str, list[float]]) -> None:
        """Called after every evaluation with all metrics (member position → value)."""

    def on_member_end(self, member: Member, history: MemberSeries,
                      state: dict[str, torch.Tensor]) -> None:
        """A member has left the population; ``state`` is its final parameters (CPU)."""

    def on_train_end(self, history: History) -> None:
        """All members are done."""


def _per_member(members: Sequence[Member], attr: str, device: torch.device) -> torch.Tensor:
    return torch.tensor([float(getattr(m.spec.train, attr)) for m in members], device=device,
                        dtype=torch.float64)


def _optimizer(population: Population, members: Sequence[Member]) -> PopulationAdamW:
    device = population.device
    trainable = {
        name: torch.tensor([float(m.spec.init.trainable(layer_of(name))) for m in members],
                           device=device)
        for name in population.params
    }
    betas = torch.tensor([list(m.spec.train.betas) for m in members], device=device,
                         dtype=torch.float64)  # (K, 2): each member its own, like lr
    scale = _per_member(members, "embedding_lr_scale", device)
    lr_scale = {name: scale if name == "embedding" else torch.ones_like(scale)
                for name in population.params}
    return PopulationAdamW(population.params, _per_member(members, "lr", device),
                           _per_member(members, "weight_decay", device), trainable,
                           betas=betas, eps=_per_member(members, "eps", device),
                           lr_scale=lr_scale,
                           reducers=build_reducers(members, population.params))


def _dropout_masks(rate: float, generators: list[torch.Generator], device: torch.device):
    """Training dropout: each member's masks from its own generator (member-alone parity)."""
    def masks(site: str, shape: tuple[int, ...]) -> torch.Tensor:
        keep = torch.stack([(torch.rand(shape[1:], generator=g) >= rate) for g in generators])
        return keep.to(device=device, dtype=torch.float32) / (1.0 - rate)
    return masks


@torch.no_grad()
def evaluate(population: Population, data: TrainData, lo: int = 0,
             hi: int | None = None) -> dict[str, torch.Tensor]:
    """Train/test accuracy and loss over the whole pair table of members lo..hi-1 (default
    all): (K,) each."""
    table = data.table
    params = {n: p[lo:hi] for n, p in population.params.items()}
    out = logits(params, population.arch, table.left, table.right)  # (K, N, P)
    return accuracy_and_loss(out, table.labels, data.splits.train_mask[lo:hi])


def train(population: Population, members: Sequence[Member], data: TrainData,
          hooks: Sequence[Hook] = (), *, should_stop: Callable[[], bool] | None = None,
          resume: LoopState | None = None) -> History:
    """Train all members for their epochs; return every member's history.

    ``should_stop`` is asked after every epoch; when it answers True the loop raises
    :class:`Interrupted` with a :class:`LoopState`. Passing that state back as ``resume``
    (with the same members, data and a population built from ``state.params``) continues
    with bitwise the same results on the CPU.
    """
    active = list(members)
    spec = active[0].spec
    epochs, batch, every = spec.train.epochs, spec.train.batch_size, spec.metrics.every
    device = population.device
    table = PairTable(data.table.modulus, data.table.left.to(device),
                      data.table.right.to(device), data.table.labels.to(device))
    data = TrainData(table, data.splits.to(device))
    histories = [MemberSeries(m.index) for m in active]
    finished: list[MemberSeries] = []
    optimizer = _optimizer(population, active)
    order_gens = [generator_for(m.spec.train.seed, "order") for m in active]
    dropout_gens = [generator_for(m.spec.train.seed, "dropout") for m in active]
    n_train = int(data.splits.train_index.shape[1])
    start_epoch = 1
    if resume is not None:
        position = {m.index: p for p, m in enumerate(active)}
        keep_pos = [position[i] for i in resume.active]
        by_index = {h.index: h for h in resume.histories}
        finished = [h for h in resume.histories if h.index not in resume.active]
        active = [active[p] for p in keep_pos]
        histories = [by_index[i] for i in resume.active]
        data = TrainData(data.table, data.splits.select(torch.tensor(keep_pos, device=device)))
        optimizer = _optimizer(population, active)
        optimizer.load_state_dict(resume.optimizer)
        order_gens = [order_gens[p] for p in keep_pos]
        dropout_gens = [dropout_gens[p] for p in keep_pos]
        for gen, state in zip([*order_gens, *dropout_gens],
                              [*resume.order_states, *resume.dropout_states], strict=True):
            gen.set_state(state)
        start_epoch = resume.epoch + 1

    def stop_here(epoch: int) -> None:
        if should_stop is None or not active or not should_stop():
            return
        raise Interrupted(LoopState(
            epoch=epoch, active=[m.index for m in active],
            params={n: t.detach().cpu().clone() for n, t in population.params.items()},
            optimizer=optimizer.state_dict(cpu=True),
            order_states=[g.get_state() for g in order_gens],
            dropout_states=[g.get_state() for g in dropout_gens],
            histories=sorted([*finished, *histories], key=lambda h: h.index)))

    trainer = ShardedTrainer(population, optimizer, batch)

    def run_evaluation(epoch: int) -> None:
        nonlocal active, histories, order_gens, dropout_gens, data, trainer
        ctx = EvalContext(epoch, population, active, data, histories)
        parts = trainer.map(lambda lo, hi: evaluate(population, data, lo, hi))
        values = {name: torch.cat([part[name] for part in parts]) for name in parts[0]}
        for hook in hooks:
            values.update(hook.metrics(ctx))
        as_lists = {name: v.detach().float().cpu().tolist() for name, v in values.items()}
        for pos, (member, hist) in enumerate(zip(active, histories, strict=True)):
            row = {name: vals[pos] for name, vals in as_lists.items()}
            hist.record(epoch, row)
            hist.last_epoch = epoch
            threshold = member.spec.metrics.grok_threshold
            if hist.train_grok_epoch is None and row["train_acc"] >= threshold:
                hist.train_grok_epoch = epoch
            if hist.test_grok_epoch is None and row["test_acc"] >= threshold:
                hist.test_grok_epoch = epoch
            if not math.isfinite(row["train_loss"]):
                ctx.request_stop(member.index, "FAILED", f"train loss became {row['train_loss']}")
            hold = member.spec.train.stop_after_generalized
            if (hold is not None and hist.test_grok_epoch is not None
                    and epoch - hist.test_grok_epoch >= hold):
                ctx.stop_requests.setdefault(member.index, ("FINISHED", "generalised"))
        for hook in hooks:
            hook.on_evaluation(ctx, as_lists)
        ending = {m.index for m in active if m.index in ctx.stop_requests}
        if epoch == epochs:
            ending = {m.index for m in active}
        if not ending:
            return
        for pos, (member, hist) in enumerate(zip(active, histories, strict=True)):
            if member.index in ending:
                hist.status, hist.reason = ctx.stop_requests.get(member.index, ("FINISHED", ""))
                state = population.member_state(pos)
                for hook in hooks:
                    hook.on_member_end(member, hist, state)
                finished.append(hist)
        keep_pos = [p for p, m in enumerate(active) if m.index not in ending]
        if keep_pos:
            keep = torch.tensor(keep_pos, device=device)
            population.select(keep)
            optimizer.select(keep, population.params)
            data = TrainData(data.table, data.splits.select(keep))
            trainer.close()
            trainer = ShardedTrainer(population, optimizer, batch)
        active = [active[p] for p in keep_pos]
        histories = [histories[p] for p in keep_pos]
        order_gens = [order_gens[p] for p in keep_pos]
        dropout_gens = [dropout_gens[p] for p in keep_pos]

    def masks(lo: int, hi: int) -> DropoutMasks | None:
        """Members lo..hi-1's dropout for this epoch, from their own generators."""
        if spec.train.dropout == 0:
            return None
        return _dropout_masks(spec.train.dropout, dropout_gens[lo:hi], device)

    def shuffled(lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Members lo..hi-1's training pairs in this epoch's order (each its own)."""
        perms = torch.stack([torch.randperm(n_train, generator=g) for g in order_gens[lo:hi]])
        rows = torch.gather(data.splits.train_index[lo:hi], 1, perms.to(device))  # (k, N)
        return table.left[rows], table.right[rows], table.labels[rows]

    try:
        if resume is None:
            run_evaluation(0)
            stop_here(0)
        for epoch in range(start_epoch, epochs + 1):
            if not active:
                break
            trainer.epoch(shuffled, masks)
            if epoch % every == 0 or epoch == epochs:
                run_evaluation(epoch)
            stop_here(epoch)
    finally:
        trainer.close()
    history = History(sorted(finished, key=lambda h: h.index))
    for hook in hooks:
        hook.on_train_end(history)
    return history
