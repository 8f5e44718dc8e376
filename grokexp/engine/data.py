"""The algorithmic data set (modular arithmetic or S5) and its train/test splits, one split
per member.

Every member of a population sees the same table of pairs; only which pairs are training
pairs differs (by ``split_seed``). Evaluation therefore runs once over the whole table.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..spec.schema import TaskSpec
from .seeding import generator_for

__all__ = ["PairTable", "Splits", "TrainData", "SplitDataset", "SPLIT_DIGEST_TAG",
           "pair_table", "make_splits", "split_digest", "split_dataset"]

SPLIT_DIGEST_TAG = "grokexp.split_digest"
_DIGEST_CHARS = 12


@dataclass(frozen=True)
class PairTable:
    """All operand pairs of the task and their labels."""

    modulus: int  # the number of tokens, which is the number of classes: P, or 120 for s5
    left: torch.Tensor  # (N,) int64, first operand i
    right: torch.Tensor  # (N,) int64, second operand j
    labels: torch.Tensor  # (N,) int64, i ∘ j
    residues: bool = True  # tokens are the residues mod P in order (TaskSpec.residues)

    @property
    def size(self) -> int:
        return int(self.labels.shape[0])

    @property
    def pairs(self) -> torch.Tensor:
        """(N, 2) int64: each pair's operands, as an architecture's forward takes them."""
        return torch.stack([self.left, self.right], dim=1)

    def to(self, device: torch.device) -> PairTable:
        """The same table on ``device``, every field kept (the loop moves it once)."""
        return PairTable(self.modulus, self.left.to(device), self.right.to(device),
                         self.labels.to(device), self.residues)


@dataclass
class Splits:
    """Per-member train/test index sets into the pair table (``PerMember``)."""

    train_index: torch.Tensor  # (K, N_train) int64
    test_index: torch.Tensor  # (K, N_test) int64
    train_mask: torch.Tensor  # (K, N) bool

    @property
    def members(self) -> int:
        return int(self.train_index.shape[0])

    def select(self, keep: torch.Tensor | Sequence[int]) -> Splits:
        """The splits of the members at positions ``keep``, as new tensors."""
        index = torch.as_tensor(keep, dtype=torch.long, device=self.train_index.device)
        return Splits(self.train_index[index], self.test_index[index], self.train_mask[index])

    def retire(self, keep: Sequence[int]) -> None:
        """Keep only the members at positions ``keep``, in place (``PerMember``)."""
        kept = self.select(keep)
        self.train_index, self.test_index, self.train_mask = (
            kept.train_index, kept.test_index, kept.train_mask)

    def to(self, device: torch.device) -> Splits:
        return Splits(self.train_index.to(device), self.test_index.to(device),
                      self.train_mask.to(device))


@dataclass(frozen=True)
class TrainData:
    """What a population trains on: the pair table and each member's split."""

    table: PairTable
    splits: Splits


def pair_table(task: TaskSpec) -> PairTable:
    """Every pair (i, j) of tokens (j ≠ 0 for division), labelled by the operation."""
    if task.operation == "s5":
        return _s5_table()
    p = task.tokens
    i, j = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    i, j = i.reshape(-1), j.reshape(-1)
    if task.operation == "div":  # i · j^(P-2) mod P, Fermat's inverse (P prime: the spec)
        keep = j != 0
        i, j = i[keep], j[keep]
        inverse = torch.tensor([pow(int(b), p - 2, p) for b in range(p)])
        labels = (i * inverse[j]) % p
    else:  # int64 holds i³ + ij for every P the spec allows (≤ 4096)
        labels = _POLYNOMIALS[task.operation](i, j) % p
    return PairTable(p, i.contiguous(), j.contiguous(), labels.contiguous())


_POLYNOMIALS = {
    "add": lambda i, j: i + j,
    "sub": lambda i, j: i - j,
    "mul": lambda i, j: i * j,
    "x**2+y**2": lambda i, j: i**2 + j**2,
    "x**2+x*y+y**2": lambda i, j: i**2 + i * j + j**2,
    "x**3+x*y": lambda i, j: i**3 + i * j,
}


def _s5_table() -> PairTable:
    """S5: token n is the n-th permutation of (0..4) in lexicographic order; the label of
    (a, b) is the index of a∘b, (a∘b)(x) = a[b[x]]."""
    perms = torch.tensor(list(itertools.permutations(range(5))))  # (120, 5)
    n = perms.shape[0]
    a, b = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    a, b = a.reshape(-1), b.reshape(-1)
    composed = torch.gather(perms[a], 1, perms[b])  # (N, 5): a[b[x]]
    digits = 5 ** torch.arange(4, -1, -1)  # a permutation read as a base-5 number
    index = torch.full((5**5,), -1, dtype=torch.long)  # that number → the permutation's index
    index[perms @ digits] = torch.arange(n)
    return PairTable(n, a.contiguous(), b.contiguous(), index[composed @ digits].contiguous(),
                     residues=False)


def train_size(task: TaskSpec, table_size: int) -> int:
    return max(1, min(table_size - 1, int(task.train_fraction * table_size)))


def make_splits(task: TaskSpec, table: PairTable, split_seeds: Sequence[int]) -> Splits:
    """One random split per member; equal seeds give equal splits."""
    n = table.size
    n_train = train_size(task, n)
    train, test = [], []
    for seed in split_seeds:
        order = torch.randperm(n, generator=generator_for(seed, "split"))
        train.append(order[:n_train].sort().values)
        test.append(order[n_train:].sort().values)
    train_index = torch.stack(train)
    mask = torch.zeros(len(split_seeds), n, dtype=torch.bool)
    mask.scatter_(1, train_index, True)
    return Splits(train_index, torch.stack(test), mask)


def split_digest(train_indices: torch.Tensor | Sequence[int], task: TaskSpec,
                 split_seed: int) -> str:
    """The identity of one split: equal digests mean the same training pairs of one task.

    The first 12 hex digits of the SHA-256 of: the JSON object ``{"modulus", "operation",
    "split_seed", "train_fraction"}`` (keys sorted, no spaces; ``modulus`` null for s5), a
    newline, then the sorted training indices into :func:`pair_table` as little-endian int64.
    """
    header = json.dumps({"modulus": task.modulus, "operation": task.operation,
                         "split_seed": split_seed, "train_fraction": task.train_fraction},
                        sort_keys=True, separators=(",", ":"))
    values = (train_indices.cpu().numpy() if isinstance(train_indices, torch.Tensor)
              else np.asarray(list(train_indices)))
    indices = np.sort(values.astype("<i8", copy=False).reshape(-1))
    digest = hashlib.sha256(header.encode())
    digest.update(b"\n")
    digest.update(indices.tobytes())
    return digest.hexdigest()[:_DIGEST_CHARS]


@dataclass(frozen=True)
class SplitDataset:
    """One member's split described as a data set: what a tracker logs as its input."""

    name: str  # the task: equal for every split of it
    digest: str  # the split: see split_digest
    source: str  # JSON: how to make the split again
    schema: str  # JSON: the columns of a pair (MLflow's colspec form)
    profile: str  # JSON: sizes and the split seed


def split_dataset(task: TaskSpec, split_seed: int, table: PairTable | None = None) -> SplitDataset:
    """The split ``make_splits`` gives this seed, as a :class:`SplitDataset`."""
    table = table if table is not None else pair_table(task)
    splits = make_splits(task, table, [split_seed])
    n_train = int(splits.train_index.shape[1])
    recipe = {"modulus": task.modulus, "operation": task.operation,
              "train_fraction": task.train_fraction, "split_seed": split_seed}
    columns = [{"name": name, "type": "long"} for name in ("left", "right", "label")]
    return SplitDataset(
        name=(f"{task.operation}{'' if task.modulus is None else f'-mod{task.modulus}'}"
              f"-train{task.train_fraction:g}"),
        digest=split_digest(splits.train_index[0], task, split_seed),
        source=json.dumps({"generator": "grokexp.data.make_splits", **recipe}),
        schema=json.dumps({"mlflow_colspec": columns}),
        profile=json.dumps({"pairs": table.size, "train": n_train,
                            "test": table.size - n_train, "split_seed": split_seed}))
