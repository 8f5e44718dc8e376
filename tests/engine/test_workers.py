"""Shards: members split across worker threads train as they would in one piece."""

from __future__ import annotations

import threading

import torch

from grokexp.engine.data import make_splits, pair_table
from grokexp.engine.model import Population
from grokexp.engine.sweep import expand_members
from grokexp.engine.train import TrainData, _optimizer, train
from grokexp.engine.workers import ShardedTrainer, shard_size
from grokexp.spec.io import validate_spec

RAW = {"name": "w", "task": {"modulus": 11}, "model": {"embedding_dim": 8, "hidden": 16},
       "train": {"epochs": 3, "batch_size": 16, "lr": 1e-2}, "sweep": {"seeds": [0, 1, 2, 3, 4]}}


def _setup():
    spec = validate_spec(RAW, "w")
    members = expand_members(spec)
    table = pair_table(spec.task)
    splits = make_splits(spec.task, table, [m.spec.train.split_seed for m in members])
    population = Population.from_specs([m.spec for m in members], torch.device("cpu"))
    return members, table, splits, population


def _epochs(workers: int) -> dict[str, torch.Tensor]:
    members, table, splits, population = _setup()
    optimizer = _optimizer(population, members)
    trainer = ShardedTrainer(population, optimizer, 16, workers=workers)
    assert len(trainer.shards) % workers == 0
    assert all(0 < s.hi - s.lo <= shard_size(population) for s in trainer.shards)
    assert [s.lo for s in trainer.shards[1:]] == [s.hi for s in trainer.shards[:-1]]
    try:
        for epoch in range(3):
            g = torch.Generator().manual_seed(epoch)
            perm = torch.stack([torch.randperm(splits.train_index.shape[1], generator=g)
                                for _ in members])
            rows = torch.gather(splits.train_index, 1, perm)
            trainer.epoch(lambda lo, hi, rows=rows: (table.left[rows[lo:hi]],
                                                     table.right[rows[lo:hi]],
                                                     table.labels[rows[lo:hi]]),
                          lambda lo, hi: None)
    finally:
        trainer.close()
    assert optimizer.step_count == 3 * 4  # 60 training pairs in batches of 16
    return {n: t.detach().clone() for n, t in population.params.items()}


def test_sharded_population_matches_one_shard():
    one, three = _epochs(1), _epochs(3)  # 5 members: one shard of 5; shards of 2, 2 and 1
    for name in one:
        torch.testing.assert_close(three[name], one[name], rtol=1e-6, atol=1e-7)
    assert not torch.equal(one["embedding"], _setup()[3].params["embedding"].detach())


def test_training_gives_the_thread_count_back():
    before = torch.get_num_threads()
    members, table, splits, population = _setup()
    train(population, members, TrainData(table, splits))
    assert torch.get_num_threads() == before
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert seen == [before]


def _population(modulus: int, embedding_dim: int, hidden: int, k: int):
    spec = validate_spec({"name": "s", "task": {"modulus": modulus},
                          "model": {"embedding_dim": embedding_dim, "hidden": hidden},
                          "sweep": {"seeds": list(range(k))}}, "s")
    members = expand_members(spec)
    return Population.from_specs([m.spec for m in members], torch.device("cpu")), members


def test_shard_size_shrinks_with_the_model():
    paper, _ = _population(53, 128, 256, 2)  # 86k parameters: 1.4 MB of training state each
    assert 2 <= shard_size(paper) <= 4
    small, _ = _population(11, 8, 16, 2)
    assert shard_size(small) > 10 * shard_size(paper)
    population, members = _population(11, 8, 16, 16)  # small members: one shard per worker
    trainer = ShardedTrainer(population, _optimizer(population, members), 16, workers=2)
    try:
        assert [(s.lo, s.hi) for s in trainer.shards] == [(0, 8), (8, 16)]
    finally:
        trainer.close()
