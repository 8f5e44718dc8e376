"""What every per-member structure of a population has in common: members leave it.

A population trains K members in lockstep. Everything that holds something of each member
keeps it in the population's order, on a tensor's leading axis or in a list: the stacked
weights (``Population``), the AdamW moments and settings (``PopulationAdamW``), the reducers'
state (``Reducers``), the data splits (``Splits``), each member's generators, the members and
their series (:class:`MemberList`). When members leave, the loop tells each of them the same
thing, ``retire(keep)``: one door, for members that finish and for a resume (which retires
the members that had finished before the checkpoint).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

__all__ = ["PerMember", "MemberList"]

T = TypeVar("T")


class PerMember(Protocol):
    """Something with one entry per member of a population, in the population's order."""

    def retire(self, keep: Sequence[int]) -> None:
        """Keep only the members at positions ``keep``, in that order, in place; the others
        have left the population."""


class MemberList(list[T]):
    """A list with one item per member (members, series, generators) that retires like the
    tensors do."""

    def retire(self, keep: Sequence[int]) -> None:
        self[:] = [self[p] for p in keep]
