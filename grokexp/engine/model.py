"""The population: K copies of the paper's network, parameters stacked on a leading axis.

Member k's parameters are ``params[name][k]``; a forward pass is a few batched matmuls over
``(K, B, ·)``. There is no per-member module: K = 1 is simply a population of one.

The first layer never forms the (B, 2d) concatenated embedding: with only P distinct tokens,
``concat(E[i], E[j]) @ W1 = (E @ W1a)[i] + (E @ W1b)[j]``, so it is two per-token tables
(K, P, H) and a gather-and-add (``embedding_bag``), unless dropout must act on the embedding
itself. Training does not go through autograd: ``step.py`` writes this forward's gradients out
by hand; these functions stay differentiable for probes and tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..spec.schema import Spec
from .init import init_member, parameter_layout

__all__ = ["Architecture", "Population", "logits", "DropoutMasks", "first_layer_tables",
           "activate_"]

# Draws a keep-mask (already divided by 1-p) of the given shape for one dropout site.
DropoutMasks = Callable[[str, tuple[int, ...]], torch.Tensor]


@dataclass(frozen=True)
class Architecture:
    """What the forward pass needs to know besides the parameters."""

    modulus: int
    embedding_dim: int
    hidden: tuple[int, ...]
    activation: str
    embedding_activation: str

    @classmethod
    def from_spec(cls, spec: Spec) -> Architecture:
        m = spec.model
        return cls(spec.task.modulus, m.embedding_dim, m.hidden_sizes, m.activation,
                   m.embedding_activation)


_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu, "gelu": F.gelu, "tanh": torch.tanh, "none": lambda x: x,
}


def activate_(name: str, pre: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """The hidden activation ``name`` of ``pre`` without autograd, with the values of
    ``_ACTIVATIONS``: in place where its backward needs only the output (relu, tanh); gelu,
    whose backward needs ``pre``, into ``out`` (a new tensor when None)."""
    if name == "relu":
        return pre.clamp_min_(0.0)
    if name == "tanh":
        return pre.tanh_()
    if name == "gelu":
        return F.gelu(pre) if out is None else torch.ops.aten.gelu.out(pre, out=out)
    raise ValueError(f"unknown activation {name!r}")


def embedded(params: Mapping[str, torch.Tensor], arch: Architecture) -> torch.Tensor:
    """The embedding table after its optional activation: (K, P, d)."""
    return _ACTIVATIONS[arch.embedding_activation](params["embedding"])


def first_layer_tables(params: Mapping[str, torch.Tensor], arch: Architecture) -> torch.Tensor:
    """The first layer's per-token tables (K, 2, P, H): ``[:, 0]`` = emb @ W1a + b1 (rows for
    the left token), ``[:, 1]`` = emb @ W1b (the right token); one bmm over 2K halves."""
    emb = embedded(params, arch)  # (K, P, d)
    weight, bias = params["hidden.0.weight"], params["hidden.0.bias"]  # (K, 2d, H), (K, H)
    k, p, d = emb.shape
    h = weight.shape[-1]
    tables = torch.bmm(emb[:, None].expand(k, 2, p, d).reshape(2 * k, p, d),
                       weight.reshape(2 * k, d, h)).view(k, 2, p, h)
    tables[:, 0] += bias[:, None, :]
    return tables


def first_preactivation(params: Mapping[str, torch.Tensor], arch: Architecture,
                        left: torch.Tensor, right: torch.Tensor,
                        masks: DropoutMasks | None = None) -> torch.Tensor:
    """Pre-activation of the first hidden layer: (K, B, H).

    ``left``/``right`` are (K, B) per-member token indices, or (N,) shared by all members.
    """
    emb = embedded(params, arch)  # (K, P, d)
    k, p, d = emb.shape
    if left.dim() == 1:
        left, right = left.expand(k, -1), right.expand(k, -1)
    if masks is not None:  # dropout acts on the concatenated embedding: build it
        index = torch.cat([left, right], dim=1)[..., None].expand(-1, -1, d)  # (K, 2B, d)
        rows = torch.gather(emb, 1, index)  # (K, 2B, d)
        b = left.shape[1]
        x = torch.cat([rows[:, :b], rows[:, b:]], dim=2)  # (K, B, 2d)
        x = x * masks("embedding", tuple(x.shape))
        return torch.baddbmm(params["hidden.0.bias"][:, None, :], x, params["hidden.0.weight"])
    tables = first_layer_tables(params, arch)  # (K, 2, P, H)
    h = tables.shape[-1]
    offsets = torch.arange(k, device=left.device)[:, None] * (2 * p)  # (K, 1)
    pairs = torch.stack([left + offsets, right + offsets + p], dim=2)  # (K, B, 2)
    # each pair's two table rows, gathered and added in one pass
    return F.embedding_bag(pairs.view(-1, 2), tables.reshape(-1, h),
                           mode="sum").view(k, -1, h)


def hidden_activations(params: Mapping[str, torch.Tensor], arch: Architecture,
                       left: torch.Tensor, right: torch.Tensor,
                       masks: DropoutMasks | None = None) -> list[torch.Tensor]:
    """Each hidden layer's output after its activation (and dropout): [(K, B, H_l)]."""
    act = _ACTIVATIONS[arch.activation]
    h = act(first_preactivation(params, arch, left, right, masks))
    outputs = []
    for index in range(len(arch.hidden)):
        if index > 0:
            h = act(torch.baddbmm(params[f"hidden.{index}.bias"][:, None, :], h,
                                  params[f"hidden.{index}.weight"]))
        if masks is not None:
            h = h * masks("hidden", tuple(h.shape))
        outputs.append(h)
    return outputs


def logits(params: Mapping[str, torch.Tensor], arch: Architecture, left: torch.Tensor,
           right: torch.Tensor, masks: DropoutMasks | None = None) -> torch.Tensor:
    """Class scores (K, B, P) for token pairs; pure in ``params`` so probes can pass copies."""
    h = hidden_activations(params, arch, left, right, masks)[-1]
    return torch.baddbmm(params["output.bias"][:, None, :], h, params["output.weight"])


class Population:
    """K members' parameters, stacked, as autograd leaves on one device."""

    def __init__(self, arch: Architecture, params: dict[str, torch.Tensor]):
        self.arch = arch
        self.params = {name: t.detach().requires_grad_(True) for name, t in params.items()}

    @classmethod
    def from_specs(cls, specs: list[Spec], device: torch.device) -> Population:
        """Draw every member's init (each from its own seed) and stack them."""
        arch = Architecture.from_spec(specs[0])
        drawn = [init_member(s) for s in specs]
        names = [name for name, *_ in parameter_layout(specs[0])]
        return cls(arch, {n: torch.stack([m[n] for m in drawn]).to(device) for n in names})

    @property
    def size(self) -> int:
        return int(self.params["embedding"].shape[0])

    @property
    def device(self) -> torch.device:
        return self.params["embedding"].device

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

    def logits(self, left: torch.Tensor, right: torch.Tensor,
               masks: DropoutMasks | None = None) -> torch.Tensor:
        return logits(self.params, self.arch, left, right, masks)
