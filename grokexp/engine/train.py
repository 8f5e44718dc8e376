"""The training loop: every member of a population in lockstep, evaluated on a cadence.

``train(population, members, data, hooks) -> History`` runs a :class:`PopulationLoop`, which
reads top to bottom: set up (or resume), then each epoch train every member, evaluate on the
cadence, let the members that are done leave, stop when asked. It never imports mlflow and
never reads files; whatever should happen at an evaluation (the grok and stop rules, logging,
progress, extra metrics, pruning, checkpoints) comes in through hooks (``hooks.py``,
``rules.py``). Members that leave (generalised and held, diverged, pruned) are retired from
every per-member structure at once (``per_member.py``); the rest go on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..series import MemberSeries
from .accuracy import accuracy_and_loss
from .arch import DropoutMasks
from .data import TrainData
from .hooks import EvalContext, Hook
from .model import Population
from .optim import PopulationAdamW
from .per_member import MemberList, PerMember
from .reducers import build_reducers
from .rules import RULES
from .seeding import generator_for
from .state import History, Interrupted, LoopState
from .sweep import Member
from .workers import ShardedTrainer

__all__ = ["History", "MemberSeries", "EvalContext", "Hook", "train", "TrainData",
           "LoopState", "Interrupted", "PopulationLoop", "evaluate"]


def _per_member(members: Sequence[Member], attr: str, device: torch.device) -> torch.Tensor:
    return torch.tensor([float(getattr(m.spec.train, attr)) for m in members], device=device,
                        dtype=torch.float64)


def _optimizer(population: Population, members: Sequence[Member]) -> PopulationAdamW:
    """The members' AdamW over the population's own ``params`` dict."""
    device = population.device
    group = {p.name: p.group for p in population.arch.layout()}  # its [init.<group>] table
    trainable = {
        name: torch.tensor([float(m.spec.init.trainable(group[name])) for m in members],
                           device=device)
        for name in population.params
    }
    betas = torch.tensor([list(m.spec.train.betas) for m in members], device=device,
                         dtype=torch.float64)  # (K, 2): each member its own, like lr
    scale = _per_member(members, "embedding_lr_scale", device)
    embedding = population.arch.embedding_params
    lr_scale = {name: scale if name in embedding else torch.ones_like(scale)
                for name in population.params}
    return PopulationAdamW(population.params, _per_member(members, "lr", device),
                           _per_member(members, "weight_decay", device), trainable,
                           betas=betas, eps=_per_member(members, "eps", device),
                           lr_scale=lr_scale,
                           reducers=build_reducers(members, population.params))


def _dropout_masks(rate: float, generators: list[torch.Generator], device: torch.device):
    """Training dropout: each member's masks from its own generator (member-alone parity).

    A site's mask of shape (K, N, ...) is each member's (N, ...) draw, stacked: any site's
    shape, in the order the forward asks for them."""
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
    k = next(iter(params.values())).shape[0]
    out = population.arch.logits(params, table.pairs.expand(k, -1, -1))  # (K, N, C)
    return accuracy_and_loss(out, table.labels, data.splits.train_mask[lo:hi])


class PopulationLoop:
    """One population's training: the members still in it, and everything each one has."""

    def __init__(self, population: Population, members: Sequence[Member], data: TrainData,
                 hooks: Sequence[Hook] = (), resume: LoopState | None = None):
        spec = members[0].spec  # equal in all that the loop reads (sweep.shape_key)
        self.epochs, self.every = spec.train.epochs, spec.metrics.every
        self.batch, self.dropout = spec.train.batch_size, spec.train.dropout
        self.population = population
        self.hooks: list[Hook] = [*(rule() for rule in RULES), *hooks]
        device = population.device
        self.data = TrainData(data.table.to(device), data.splits.to(device))
        self.members = MemberList(members)
        self.histories = MemberList(MemberSeries(m.index, threshold=m.spec.metrics.grok_threshold,
                                                 budget=m.spec.train.epochs) for m in members)
        self.order = MemberList(generator_for(m.spec.train.seed, "order") for m in members)
        self.dropout_gens = MemberList(generator_for(m.spec.train.seed, "dropout")
                                       for m in members)
        self.finished: list[MemberSeries] = []
        self.epoch = 0  # the last epoch trained
        self.resumed = resume is not None
        if resume is not None:
            self._retire_finished(resume)
        self.optimizer = _optimizer(population, self.members)
        if resume is not None:
            self._restore(resume)
        self.trainer = ShardedTrainer(population, self.optimizer, self.batch)

    def _cohort(self) -> list[PerMember]:
        """What each member has besides its weights and moments."""
        return [self.members, self.histories, self.order, self.dropout_gens, self.data.splits]

    def _retire_finished(self, state: LoopState) -> None:
        """Resume: the series saved, and the members that had left retired (the population's
        weights and the optimiser's moments were saved without them)."""
        saved = {h.index: h for h in state.histories}
        for fresh in self.histories:  # a checkpoint keeps the columns, not the spec's facts
            saved[fresh.index].threshold = fresh.threshold
            saved[fresh.index].budget, saved[fresh.index].label = fresh.budget, fresh.label
        self.histories[:] = [saved[m.index] for m in self.members]
        self.finished = [h for h in state.histories if h.index not in state.active]
        position = {m.index: p for p, m in enumerate(self.members)}
        for part in self._cohort():
            part.retire([position[i] for i in state.active])
        self.epoch = state.epoch

    def _restore(self, state: LoopState) -> None:
        """Resume: the optimiser's moments and every generator where they stood."""
        self.optimizer.load_state_dict(state.optimizer)
        for gen, saved in zip([*self.order, *self.dropout_gens],
                              [*state.order_states, *state.dropout_states], strict=True):
            gen.set_state(saved)

    def run(self, should_stop: Callable[[], bool] | None = None) -> History:
        """Train every member for its epochs (or until it leaves); every member's series."""
        try:
            if not self.resumed:
                self.evaluate(0)
                self._stop_if_asked(should_stop)
            while self.members and self.epoch < self.epochs:
                self.epoch += 1
                self.trainer.epoch(self._shuffled, self._masks)
                if self.epoch % self.every == 0 or self.epoch == self.epochs:
                    self.evaluate(self.epoch)
                self._stop_if_asked(should_stop)
        finally:
            self.trainer.close()
        history = History(sorted(self.finished, key=lambda h: h.index))
        for hook in self.hooks:
            hook.on_train_end(history)
        return history

    def evaluate(self, epoch: int) -> None:
        """Measure every member, record it in its series, show the hooks; then the members
        that are done (asked to stop, or at the last epoch) leave."""
        ctx = EvalContext(epoch, self.population, list(self.members), self.data,
                          list(self.histories))
        parts = self.trainer.map(lambda lo, hi: evaluate(self.population, self.data, lo, hi))
        values = {name: torch.cat([part[name] for part in parts]) for name in parts[0]}
        for hook in self.hooks:
            values.update(hook.metrics(ctx))
        as_lists = {name: v.detach().float().cpu().tolist() for name, v in values.items()}
        for pos, hist in enumerate(self.histories):
            hist.record(epoch, {name: vals[pos] for name, vals in as_lists.items()})
        for hook in self.hooks:
            hook.on_evaluation(ctx, as_lists)
        leaving = [p for p, m in enumerate(self.members)
                   if epoch == self.epochs or m.index in ctx.stop_requests]
        for pos in leaving:
            member, hist = self.members[pos], self.histories[pos]
            hist.status, hist.reason = ctx.stop_requests.get(member.index, ("FINISHED", ""))
            state = self.population.member_state(pos)
            for hook in self.hooks:
                hook.on_member_end(member, hist, state)
            self.finished.append(hist)
        if leaving:
            self.retire([p for p in range(len(self.members)) if p not in leaving])

    def retire(self, keep: list[int]) -> None:
        """Keep only the members at positions ``keep``: every per-member structure follows,
        and the shards are cut anew. When none is left, the weights stay as they ended."""
        weights: list[PerMember] = [self.population, self.optimizer] if keep else []
        for part in [*weights, *self._cohort()]:
            part.retire(keep)
        if keep:
            self.trainer.close()
            self.trainer = ShardedTrainer(self.population, self.optimizer, self.batch)

    def state(self) -> LoopState:
        """Where the loop stands now, as CPU copies (what :class:`Interrupted` carries)."""
        return LoopState(
            epoch=self.epoch, active=[m.index for m in self.members],
            params={n: t.detach().cpu().clone() for n, t in self.population.params.items()},
            optimizer=self.optimizer.state_dict(cpu=True),
            order_states=[g.get_state() for g in self.order],
            dropout_states=[g.get_state() for g in self.dropout_gens],
            histories=sorted([*self.finished, *self.histories], key=lambda h: h.index))

    def _stop_if_asked(self, should_stop: Callable[[], bool] | None) -> None:
        if should_stop is not None and self.members and should_stop():
            raise Interrupted(self.state())

    def _masks(self, lo: int, hi: int) -> DropoutMasks | None:
        """Members lo..hi-1's dropout for this epoch, from their own generators."""
        if self.dropout == 0:
            return None
        return _dropout_masks(self.dropout, self.dropout_gens[lo:hi], self.population.device)

    def _shuffled(self, lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Members lo..hi-1's training pairs in this epoch's order (each its own)."""
        train_index = self.data.splits.train_index  # (K, N_train)
        perms = torch.stack([torch.randperm(train_index.shape[1], generator=g)
                             for g in self.order[lo:hi]])
        rows = torch.gather(train_index[lo:hi], 1, perms.to(train_index.device))  # (k, N)
        table = self.data.table
        return table.left[rows], table.right[rows], table.labels[rows]


def train(population: Population, members: Sequence[Member], data: TrainData,
          hooks: Sequence[Hook] = (), *, should_stop: Callable[[], bool] | None = None,
          resume: LoopState | None = None) -> History:
    """Train all members for their epochs; return every member's history.

    ``should_stop`` is asked after every epoch; when it answers True the loop raises
    :class:`Interrupted` with a :class:`LoopState`. Passing that state back as ``resume``
    (with the same members, data and a population built from ``state.params``) continues
    with bitwise the same results on the CPU.
    """
    return PopulationLoop(population, members, data, hooks, resume).run(should_stop)
