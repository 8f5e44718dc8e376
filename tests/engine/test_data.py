from __future__ import annotations

import torch

from grokexp.engine.data import make_splits, pair_table
from grokexp.spec.schema import TaskSpec


def test_pair_table_labels_follow_the_operation():
    for op, fn in {"add": lambda a, b: (a + b) % 7, "sub": lambda a, b: (a - b) % 7,
                   "mul": lambda a, b: (a * b) % 7}.items():
        table = pair_table(TaskSpec(modulus=7, operation=op))
        assert table.size == 49
        for i, j, y in zip(table.left.tolist(), table.right.tolist(), table.labels.tolist(),
                           strict=True):
            assert y == fn(i, j)


def test_division_skips_zero_and_inverts():
    table = pair_table(TaskSpec(modulus=7, operation="div"))
    assert table.size == 42 and 0 not in table.right.tolist()
    for i, j, y in zip(table.left.tolist(), table.right.tolist(), table.labels.tolist(),
                       strict=True):
        assert (y * j) % 7 == i


def test_splits_are_disjoint_seeded_and_sized():
    task = TaskSpec(modulus=53, train_fraction=0.5)
    table = pair_table(task)
    splits = make_splits(task, table, [0, 0, 1])
    assert splits.train_index.shape == (3, 1404) and splits.test_index.shape == (3, 1405)
    assert torch.equal(splits.train_index[0], splits.train_index[1])
    assert not torch.equal(splits.train_index[0], splits.train_index[2])
    both = torch.cat([splits.train_index[2], splits.test_index[2]]).sort().values
    assert torch.equal(both, torch.arange(table.size))
    assert splits.train_mask.sum(1).tolist() == [1404, 1404, 1404]
