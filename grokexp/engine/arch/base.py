"""What an architecture is to the engine: a parameter layout and one batched forward.

A population of K members of one architecture keeps every parameter stacked on a leading
axis (``params[name]`` is (K, *shape)). Everything that trains, probes or saves a member goes
through the :class:`Architecture` below, so adding an architecture is one module:

- :meth:`Architecture.layout`: each parameter's name, per-member shape, fans and the
  ``[init.<group>]`` table that draws it;
- :meth:`Architecture.forward`: ``(K, N, 2)`` int64 operand pairs in, ``(K, N, C)`` logits out,
  with dropout keep-masks at named sites and, on request, the activations at named sites;
- :meth:`Architecture.mask_shapes`: the shape of every keep-mask one pass draws, in the order
  the forward asks for them (so a probe can draw a pass's masks before it runs);
- :meth:`Architecture.token_embedding`: the (K, P, d) table the cosine and distribution
  diagnostics read, where the architecture has one;
- :meth:`Architecture.twin`: one member as a plain ``nn.Module`` (what is logged to MLflow).

The spec layer names each architecture's sites, init groups and keys
(``grokexp/spec/model.py``); an architecture's class variables must agree with it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

__all__ = ["Architecture", "DropoutMasks", "Forward", "Param"]

# Draws a keep-mask (already divided by 1-p, or 0/1 times the survivors' scale) of the given
# shape for one dropout site: the first axis is the K members, the second the N pairs.
DropoutMasks = Callable[[str, tuple[int, ...]], torch.Tensor]


@dataclass(frozen=True)
class Param:
    """One parameter of one member."""

    name: str  # e.g. "embedding", "hidden.0.weight", "blocks.0.attn.w_q"
    shape: tuple[int, ...]  # one member's shape
    fan_in: int
    fan_out: int
    group: str  # the [init.<group>] table that draws it (and freezes it: trainable = false)
    is_bias: bool = False  # drawn by the bias tables ([init.bias], [init.<group>.bias])
    constant: float | None = None  # drawn as this constant whatever the tables say (LayerNorm)


@dataclass
class Forward:
    """What one batched forward returns."""

    logits: torch.Tensor  # (K, N, C)
    # site → that site's activations, one tensor per layer it occurs in, each (K, N, ..., F):
    # after the nonlinearity, before dropout; only the sites asked for
    activations: dict[str, list[torch.Tensor]] = field(default_factory=dict)


class Architecture(ABC):
    """One architecture at fixed sizes (tokens, classes, widths): see the module docstring."""

    name: ClassVar[str]  # the spec's model.architecture
    groups: ClassVar[tuple[str, ...]]  # its [init.<group>] tables, in layout order
    sites: ClassVar[tuple[str, ...]]  # its dropout sites (metrics.mc_sites)

    n_tokens: int  # operand values 0..n_tokens-1
    n_classes: int  # C, the logits' last axis

    @abstractmethod
    def layout(self) -> list[Param]:
        """Every parameter, in draw order."""

    @abstractmethod
    def forward(self, params: Mapping[str, torch.Tensor], pairs: torch.Tensor,
                masks: DropoutMasks | None = None,
                record: Collection[str] = ()) -> Forward:
        """Logits of ``pairs`` (K, N, 2) for every member; ``masks`` applies dropout at its
        sites; ``record`` names the sites whose activations are returned. Differentiable in
        ``params`` (autograd trains every architecture without a hand-written step)."""

    @abstractmethod
    def mask_shapes(self, n: int) -> list[tuple[str, tuple[int, ...]]]:
        """(site, shape) of each keep-mask the forward draws for one member and N pairs, in
        the order it asks for them (a site occurs once per layer it is in)."""

    @property
    def relu_sites(self) -> tuple[str, ...]:
        """The sites whose activations come out of a ReLU (inactive neurons are counted there);
        none when the architecture's activation is not a ReLU."""
        return ()

    def token_embedding(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        """(K, n_tokens, d): one row per operand value, as the next layer reads it; None when
        the architecture has none."""
        return None

    @property
    def embedding_params(self) -> tuple[str, ...]:
        """The parameters ``train.embedding_lr_scale`` multiplies the learning rate of."""
        return ()

    @property
    def hand_written_step(self) -> bool:
        """Whether ``engine/step.py`` has this architecture's gradients written out by hand
        (else training runs autograd over :meth:`forward`)."""
        return False

    @abstractmethod
    def twin(self, params: Mapping[str, torch.Tensor]) -> nn.Module:
        """One member (``params[name]`` of one member's shape, no K axis) as a plain
        ``nn.Module``: ``(N, 2)`` int64 operand pairs in, ``(N, C)`` logits out."""

    def logits(self, params: Mapping[str, torch.Tensor], pairs: torch.Tensor,
               masks: DropoutMasks | None = None) -> torch.Tensor:
        """Just the logits of :meth:`forward`: (K, N, C)."""
        return self.forward(params, pairs, masks).logits
