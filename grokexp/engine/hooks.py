"""What the training loop shows its hooks at an evaluation, and what they may answer.

A hook sees an :class:`EvalContext` (the epoch, the population, the members still training
and their series) and may add metrics (:meth:`Hook.metrics`, pure: numbers, no I/O), act on
every evaluation's values, ask for members to leave (:meth:`EvalContext.request_stop`), and
hear when a member leaves and when training ends. The loop's own rules (grok epochs, when a
member must stop) are hooks too (``rules.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..series import MemberSeries
from .data import TrainData
from .model import Population
from .state import History
from .sweep import Member

__all__ = ["EvalContext", "Hook"]


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
        """Extra per-member metrics, each a (K,) tensor, merged into the evaluation. Pure:
        it measures and returns; logging and saving belong in the methods below."""
        return {}

    def on_evaluation(self, ctx: EvalContext, values: dict[str, list[float]]) -> None:
        """Called after every evaluation with all metrics (member position → value)."""

    def on_member_end(self, member: Member, history: MemberSeries,
                      state: dict[str, torch.Tensor]) -> None:
        """A member has left the population; ``state`` is its final parameters (CPU)."""

    def on_train_end(self, history: History) -> None:
        """All members are done."""
