"""Members split across worker threads: each thread trains its own contiguous shard.

Members never interact, so a population of K trains as independent shards of at most
``shard_size`` members (fewer for bigger models), handed to W worker threads (one per core
PyTorch would use), each running with a single intra-op thread; a worker trains a whole
epoch of one shard at a time. On a small CPU this beats spreading every small op over all
cores: no barrier after each of the ~25 ops of a step (a barrier waits a whole scheduler
tick when another process holds the other core), and a shard's parameters, moments and
buffers stay in its core's cache. Threads join once per epoch.
Each member's arithmetic is the same whatever shard it lands in (tests compare a member in a
population with the member alone).

Even one shard (K = 1, or one core) runs on a one-thread worker: for ops this small one
thread beats two, and by far so when the machine is shared (see docs/performance.md). On
CUDA there is one shard, on the calling thread.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import torch

from .arch import DropoutMasks
from .arch.mlp import MlpArch
from .autograd_step import AutogradStep
from .model import Population
from .optim import PopulationAdamW
from .step import TrainStep

__all__ = ["Shard", "ShardedTrainer", "Step", "training_step", "worker_count", "shard_size",
           "no_grad_call"]

# (lo, hi) → the dropout masks of members lo..hi-1, or None without dropout
MaskFactory = Callable[[int, int], DropoutMasks | None]
# (lo, hi) → members lo..hi-1's shuffled epoch: left operands, right operands, labels, each
# (hi - lo, N_train)
EpochData = Callable[[int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
T = TypeVar("T")
# A shard's training state on CPU (weights, gradients, both moments): a shard trains one
# epoch at a time on its worker, so the state stays in that core's cache; within that budget
# more members per shard spread each op's fixed cost over more of them (measured:
# docs/performance.md).
SHARD_BYTES = 3 * 2**20


class Step(Protocol):
    """A population's training step: ``TrainStep`` (hand-written) or ``AutogradStep``."""

    grads: dict[str, torch.Tensor]

    def plan(self, left: torch.Tensor, right: torch.Tensor,
             labels: torch.Tensor) -> list[Any]: ...

    def step(self, params: dict[str, torch.Tensor], batch: Any,
             masks: DropoutMasks | None = None) -> None: ...


def training_step(population: Population, params: dict[str, torch.Tensor],
                  batch_size: int) -> Step:
    """The architecture's hand-written step where it has one, else autograd over its forward."""
    arch = population.arch
    if arch.hand_written_step and isinstance(arch, MlpArch):
        return TrainStep(arch, params, batch_size)
    return AutogradStep(arch, params, batch_size)


def shard_size(population: Population) -> int:
    """Members per CPU shard: as many as keep a shard's training state within SHARD_BYTES.

    The paper's model (86k parameters, 1.4 MB of state) gets 2; a model of a few thousand
    parameters gets dozens, where one op over 2 members would be mostly its fixed cost.
    """
    per_member = 4 * sum(p[0].numel() * p.element_size() for p in population.params.values())
    return max(1, SHARD_BYTES // per_member)


def worker_count(population: Population) -> int:
    """One worker per intra-op thread PyTorch would use, at most one per member; CPU only."""
    if population.device.type != "cpu":
        return 1
    return max(1, min(torch.get_num_threads(), population.size))


class Shard:
    """Members lo..hi-1: views of their parameters and moments, their own step buffers."""

    def __init__(self, population: Population, optimizer: PopulationAdamW, lo: int, hi: int,
                 batch_size: int):
        self.lo, self.hi = lo, hi
        self.params = {n: p[lo:hi] for n, p in population.params.items()}
        self.step = training_step(population, self.params, batch_size)
        self.optimizer = optimizer.shard(lo, hi)

    def epoch(self, shuffled: EpochData, masks: MaskFactory) -> None:
        """All minibatches of one epoch, drawn here, on the shard's own thread."""
        left, right, labels = shuffled(self.lo, self.hi)
        drop = masks(self.lo, self.hi)
        for batch in self.step.plan(left, right, labels):
            self.step.step(self.params, batch, drop)
            self.optimizer.step(self.step.grads)


class ShardedTrainer:
    """Runs epochs of a population over its shards; rebuild it when members leave."""

    def __init__(self, population: Population, optimizer: PopulationAdamW, batch_size: int,
                 workers: int | None = None):
        self.optimizer = optimizer
        k = population.size
        workers = worker_count(population) if workers is None else max(1, min(workers, k))
        # a multiple of the workers, each shard at most shard_size members (when on CPU)
        per_worker = (-(-k // (workers * shard_size(population)))
                      if population.device.type == "cpu" else 1)
        n_shards = min(k, workers * per_worker)
        bounds = [round(i * k / n_shards) for i in range(n_shards + 1)]
        self.shards = [Shard(population, optimizer, lo, hi, batch_size)
                       for lo, hi in zip(bounds, bounds[1:], strict=False)]
        self._threads = torch.get_num_threads()
        self._pool = (ThreadPoolExecutor(workers, thread_name_prefix="grokexp-shard",
                                         initializer=torch.set_num_threads, initargs=(1,))
                      if population.device.type == "cpu" else None)

    def epoch(self, shuffled: EpochData, masks: MaskFactory) -> None:
        """One epoch for every member; each shard shuffles and trains on its worker."""
        if self._pool is None:
            for shard in self.shards:
                shard.epoch(shuffled, masks)
        else:
            jobs = [self._pool.submit(s.epoch, shuffled, masks) for s in self.shards]
            for job in jobs:
                job.result()
        self.optimizer.step_count = self.shards[0].optimizer.step_count

    @torch.no_grad()
    def map(self, work: Callable[[int, int], T]) -> list[T]:
        """``work(lo, hi)`` for every shard, each on its worker (the evaluation); in order."""
        if self._pool is None:
            return [work(s.lo, s.hi) for s in self.shards]
        jobs = [self._pool.submit(no_grad_call, work, s.lo, s.hi) for s in self.shards]
        return [job.result() for job in jobs]

    def close(self) -> None:
        """Stop the workers; give PyTorch back the thread count it had."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
            torch.set_num_threads(self._threads)


def no_grad_call(work: Callable[..., T], *args: object) -> T:
    """``work(*args)`` without autograd, for work handed to another thread."""
    with torch.no_grad():  # grad mode is per thread
        return work(*args)
