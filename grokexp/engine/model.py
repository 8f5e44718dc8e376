"""The population: K members of one architecture, parameters stacked on a leading axis.

Member k's parameters are ``params[name][k]``; a forward pass is the architecture's batched
forward over ``(K, N, ·)`` (``arch/``). There is no per-member module: K = 1 is simply a
population of one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..spec.schema import Spec
from .arch import Architecture, DropoutMasks, architecture_of
from .init import init_member

__all__ = ["Population", "DropoutMasks"]


class Population:
    """K members' parameters, stacked, as autograd leaves on one device."""

    def __init__(self, arch: Architecture, params: dict[str, torch.Tensor]):
        self.arch = arch
        self.params = {name: t.detach().requires_grad_(True) for name, t in params.items()}

    @classmethod
    def from_specs(cls, specs: list[Spec], device: torch.device) -> Population:
        """Draw every member's init (each from its own seed) and stack them."""
        arch = architecture_of(specs[0])
        drawn = [init_member(s) for s in specs]
        return cls(arch, {p.name: torch.stack([m[p.name] for m in drawn]).to(device)
                          for p in arch.layout()})

    @property
    def _first(self) -> torch.Tensor:
        return next(iter(self.params.values()))

    @property
    def size(self) -> int:
        return int(self._first.shape[0])

    @property
    def device(self) -> torch.device:
        return self._first.device

    def retire(self, keep: Sequence[int]) -> None:
        """Keep only the members at positions ``keep`` (``PerMember``). The tensors are
        replaced in the same ``params`` dict, so whoever holds it (the optimiser) sees the
        members that stay."""
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        for name, t in list(self.params.items()):
            self.params[name] = t.detach()[index].requires_grad_(True)

    def member_state(self, position: int) -> dict[str, torch.Tensor]:
        """One member's parameters as a plain CPU state dict (for saving)."""
        return {n: t.detach()[position].cpu().clone() for n, t in self.params.items()}

    def logits(self, pairs: torch.Tensor, masks: DropoutMasks | None = None) -> torch.Tensor:
        """(K, N, C) class scores of ``pairs``: (K, N, 2) int64, or (N, 2) shared by all."""
        if pairs.dim() == 2:
            pairs = pairs.expand(self.size, -1, -1)
        return self.arch.logits(self.params, pairs, masks)
