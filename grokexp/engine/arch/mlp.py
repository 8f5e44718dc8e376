"""The paper's network: an embedding per operand, concatenated, activation layers, P outputs.

Parameters (in × out, so a batch is ``x @ W``): ``embedding`` (P, d), ``hidden.L.weight``
(n_in, n_out), ``hidden.L.bias`` (n_out,), ``output.weight`` (H, P), ``output.bias`` (P,).
Fans follow the paper: σ = sqrt(2/(n_in+n_out)) for Xavier normal, biases included.

The first layer never forms the (B, 2d) concatenated embedding: with only P distinct tokens,
``concat(E[i], E[j]) @ W1 = (E @ W1a)[i] + (E @ W1b)[j]``, so it is two per-token tables
(K, P, H) and a gather-and-add (``embedding_bag``), unless dropout must act on the embedding
itself. Training does not go through autograd: ``engine/step.py`` writes this forward's
gradients out by hand; these functions stay differentiable for probes and tests.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ...spec.schema import Spec
from .base import Architecture, DropoutMasks, Forward, Param
from .mlp_probe import MlpDropoutPasses

__all__ = ["MlpArch", "MlpTwin", "activate_", "embedded", "first_layer_tables",
           "first_preactivation", "hidden_activations", "logits"]

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu, "gelu": F.gelu, "tanh": torch.tanh, "none": lambda x: x,
}
_MODULES: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "none": nn.Identity,
}


@dataclass(frozen=True)
class MlpArch(Architecture):
    """The paper's MLP at fixed sizes."""

    name = "mlp"
    groups = ("embedding", "hidden", "output")
    sites = ("embedding", "hidden")

    modulus: int
    embedding_dim: int
    hidden: tuple[int, ...]
    activation: str = "relu"
    embedding_activation: str = "none"
    n_tokens: int = field(init=False, repr=False, compare=False)
    n_classes: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "n_tokens", self.modulus)
        object.__setattr__(self, "n_classes", self.modulus)

    @classmethod
    def from_spec(cls, spec: Spec) -> MlpArch:
        m = spec.model
        return cls(spec.task.tokens, m.embedding_dim, m.hidden_sizes, m.activation,
                   m.embedding_activation)

    def layout(self) -> list[Param]:
        p, d = self.modulus, self.embedding_dim
        out = [Param("embedding", (p, d), d, p, "embedding")]
        n_in = 2 * d
        for index, width in enumerate(self.hidden):
            out.append(Param(f"hidden.{index}.weight", (n_in, width), n_in, width, "hidden"))
            out.append(Param(f"hidden.{index}.bias", (width,), n_in, width, "hidden",
                             is_bias=True))
            n_in = width
        out.append(Param("output.weight", (n_in, p), n_in, p, "output"))
        out.append(Param("output.bias", (p,), n_in, p, "output", is_bias=True))
        return out

    def forward(self, params: Mapping[str, torch.Tensor], pairs: torch.Tensor,
                masks: DropoutMasks | None = None,
                record: Collection[str] = ()) -> Forward:
        left, right = pairs[..., 0], pairs[..., 1]
        recorded: dict[str, list[torch.Tensor]] = {site: [] for site in record}
        if "embedding" in recorded:
            recorded["embedding"].append(_concatenated(params, self, left, right))
        act = _ACTIVATIONS[self.activation]
        h = act(first_preactivation(params, self, left, right, masks))
        for index in range(len(self.hidden)):
            if index > 0:
                h = act(torch.baddbmm(params[f"hidden.{index}.bias"][:, None, :], h,
                                      params[f"hidden.{index}.weight"]))
            if "hidden" in recorded:
                recorded["hidden"].append(h)
            if masks is not None:
                h = h * masks("hidden", tuple(h.shape))
        out = torch.baddbmm(params["output.bias"][:, None, :], h, params["output.weight"])
        return Forward(out, recorded)

    def mask_shapes(self, n: int) -> list[tuple[str, tuple[int, ...]]]:
        return [("embedding", (n, 2 * self.embedding_dim)),
                *(("hidden", (n, width)) for width in self.hidden)]

    @property
    def relu_sites(self) -> tuple[str, ...]:
        return ("hidden",) if self.activation == "relu" else ()

    def token_embedding(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return embedded(params, self)

    @property
    def embedding_params(self) -> tuple[str, ...]:
        return ("embedding",)

    @property
    def hand_written_step(self) -> bool:
        return True

    def twin(self, params: Mapping[str, torch.Tensor]) -> nn.Module:
        return MlpTwin(self, params)

    def dropout_passes(self, params: Mapping[str, torch.Tensor], pairs: torch.Tensor,
                       sites: Collection[str], chunk: int) -> MlpDropoutPasses:
        """The dropout probes' fast path (``mlp_probe.py``): the forward's values, faster."""
        return MlpDropoutPasses(self, params, pairs, sites, chunk, activate_)


class MlpTwin(nn.Module):
    """One member of :class:`MlpArch` written plainly: (N, 2) int64 pairs → (N, P) logits."""

    def __init__(self, arch: MlpArch, params: Mapping[str, torch.Tensor]):
        super().__init__()
        p, d = arch.modulus, arch.embedding_dim
        self.embedding = nn.Embedding(p, d)
        self.embedding_activation = _MODULES[arch.embedding_activation]()
        layers: list[nn.Module] = []
        n_in = 2 * d
        for width in arch.hidden:
            layers += [nn.Linear(n_in, width), _MODULES[arch.activation]()]
            n_in = width
        layers.append(nn.Linear(n_in, p))
        self.layers = nn.Sequential(*layers)
        linears = [m for m in self.layers if isinstance(m, nn.Linear)]
        names = [f"hidden.{i}" for i in range(len(arch.hidden))] + ["output"]
        with torch.no_grad():
            self.embedding.weight.copy_(params["embedding"])
            for linear, name in zip(linears, names, strict=True):
                linear.weight.copy_(params[f"{name}.weight"].T)  # ours is in × out
                linear.bias.copy_(params[f"{name}.bias"])

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        x = self.embedding_activation(self.embedding(pairs))  # (N, 2, d)
        return self.layers(x.flatten(1))  # concat(E[a], E[b]) → logits


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


def embedded(params: Mapping[str, torch.Tensor], arch: MlpArch) -> torch.Tensor:
    """The embedding table after its optional activation: (K, P, d)."""
    return _ACTIVATIONS[arch.embedding_activation](params["embedding"])


def _per_member(emb: torch.Tensor, left: torch.Tensor,
                right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) indices shared by all members → (K, N) views."""
    if left.dim() == 1:
        k = emb.shape[0]
        return left.expand(k, -1), right.expand(k, -1)
    return left, right


def _concatenated(params: Mapping[str, torch.Tensor], arch: MlpArch, left: torch.Tensor,
                  right: torch.Tensor) -> torch.Tensor:
    """concat(emb[left], emb[right]): (K, B, 2d), what dropout at "embedding" acts on."""
    emb = embedded(params, arch)  # (K, P, d)
    left, right = _per_member(emb, left, right)
    d = emb.shape[-1]
    index = torch.cat([left, right], dim=1)[..., None].expand(-1, -1, d)  # (K, 2B, d)
    rows = torch.gather(emb, 1, index)  # (K, 2B, d)
    b = left.shape[1]
    return torch.cat([rows[:, :b], rows[:, b:]], dim=2)


def first_layer_tables(params: Mapping[str, torch.Tensor], arch: MlpArch) -> torch.Tensor:
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


def first_preactivation(params: Mapping[str, torch.Tensor], arch: MlpArch,
                        left: torch.Tensor, right: torch.Tensor,
                        masks: DropoutMasks | None = None) -> torch.Tensor:
    """Pre-activation of the first hidden layer: (K, B, H).

    ``left``/``right`` are (K, B) per-member token indices, or (N,) shared by all members.
    """
    if masks is not None:  # dropout acts on the concatenated embedding: build it
        x = _concatenated(params, arch, left, right)  # (K, B, 2d)
        x = x * masks("embedding", tuple(x.shape))
        return torch.baddbmm(params["hidden.0.bias"][:, None, :], x, params["hidden.0.weight"])
    tables = first_layer_tables(params, arch)  # (K, 2, P, H)
    k, _, p, h = tables.shape
    left, right = _per_member(tables, left, right)
    offsets = torch.arange(k, device=left.device)[:, None] * (2 * p)  # (K, 1)
    pairs = torch.stack([left + offsets, right + offsets + p], dim=2)  # (K, B, 2)
    # each pair's two table rows, gathered and added in one pass
    return F.embedding_bag(pairs.view(-1, 2), tables.reshape(-1, h),
                           mode="sum").view(k, -1, h)


def hidden_activations(params: Mapping[str, torch.Tensor], arch: MlpArch,
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


def logits(params: Mapping[str, torch.Tensor], arch: MlpArch, left: torch.Tensor,
           right: torch.Tensor, masks: DropoutMasks | None = None) -> torch.Tensor:
    """Class scores (K, B, P) for token pairs; pure in ``params`` so probes can pass copies."""
    h = hidden_activations(params, arch, left, right, masks)[-1]
    return torch.baddbmm(params["output.bias"][:, None, :], h, params["output.weight"])
