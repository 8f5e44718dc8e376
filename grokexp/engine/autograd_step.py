"""One training step of a population of any architecture, through autograd over its forward.

The objective is :class:`~grokexp.engine.step.TrainStep`'s: the sum over members of each
member's mean cross-entropy on its own minibatch, so members never mix and each member's
gradient is the one it would have alone. An architecture with a hand-written step
(``Architecture.hand_written_step``) trains through that instead; this is the path every other
architecture takes, and ``tests/engine/test_autograd_step.py`` holds it against the
hand-written one on the paper's MLP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .arch import Architecture, DropoutMasks

__all__ = ["AutogradBatch", "AutogradStep"]


@dataclass(frozen=True)
class AutogradBatch:
    """One minibatch of all K members, made once per epoch."""

    size: int  # b, pairs per member
    pairs: torch.Tensor  # (K, b, 2) int64 operands
    labels: torch.Tensor  # (K, b) int64


class AutogradStep:
    """``step(params, batch)`` writes into ``self.grads`` (shapes of the parameters) the
    gradient of the sum over members of each member's mean cross-entropy on its minibatch."""

    def __init__(self, arch: Architecture, params: Mapping[str, torch.Tensor],
                 batch_size: int):
        self.arch, self.batch_size = arch, batch_size
        self.grads = {n: torch.empty_like(t, memory_format=torch.contiguous_format)
                      for n, t in params.items()}

    def plan(self, left: torch.Tensor, right: torch.Tensor,
             labels: torch.Tensor) -> list[AutogradBatch]:
        """An epoch's minibatches from its shuffled operands and labels, each (K, N_train)."""
        pairs = torch.stack([left, right], dim=2)  # (K, N, 2)
        return [AutogradBatch(int(labels[:, s:s + self.batch_size].shape[1]),
                              pairs[:, s:s + self.batch_size],
                              labels[:, s:s + self.batch_size])
                for s in range(0, left.shape[1], self.batch_size)]

    def step(self, params: Mapping[str, torch.Tensor], batch: AutogradBatch,
             masks: DropoutMasks | None = None) -> None:
        names = list(params)
        with torch.enable_grad():  # a worker thread may run with grad mode off
            leaves = {n: params[n].detach().requires_grad_(True) for n in names}
            out = self.arch.forward(leaves, batch.pairs, masks).logits  # (K, b, C)
            k, b, c = out.shape
            loss = F.cross_entropy(out.reshape(k * b, c), batch.labels.reshape(-1),
                                   reduction="none").view(k, b).mean(1).sum()
            grads = torch.autograd.grad(loss, [leaves[n] for n in names], allow_unused=True)
        with torch.no_grad():
            for name, grad in zip(names, grads, strict=True):
                if grad is None:  # a parameter this batch's logits do not read
                    self.grads[name].zero_()
                else:
                    self.grads[name].copy_(grad)
