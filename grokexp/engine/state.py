"""What the training loop hands back: every member's series when it ends, or, when it is told
to stop between epochs, everything needed to go on exactly where it stopped."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..series import MemberSeries

__all__ = ["History", "LoopState", "Interrupted"]


@dataclass
class History:
    members: list[MemberSeries]

    def by_index(self, index: int) -> MemberSeries:
        return next(m for m in self.members if m.index == index)


@dataclass
class LoopState:
    """Everything the loop needs to go on exactly where it stopped, as CPU tensors.

    ``epoch`` is the last completed epoch; ``active`` the member indices still training, in
    population order; ``params`` and ``optimizer`` hold only those; ``histories`` every
    member of the population, finished or not.
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
