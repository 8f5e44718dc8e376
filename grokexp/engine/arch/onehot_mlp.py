"""The one-hot MLP (Gromov; Doshi et al.; Prieto et al.): ``concat(onehot(a), onehot(b))``
(2P inputs) → hidden layers → P logits.

The first layer never builds the one-hot matrix: ``onehot(a, b) @ W1 = W1[a] + W1[P + b]``, so
it is a gather of two rows of W1 plus the bias, per member. Every later layer is a batched
matmul over the K members (members never mix). Linear weights are stored (in, out), like the
paper's MLP, so a batch is ``x @ W``. Inside the forward each layer's width is padded with
zero units to a multiple of four, so a member trains bitwise as it would alone (see
``_padded_layers``); what comes out has the true widths.

Parameters: ``hidden.L.weight`` (n_in, n_out) and ``hidden.L.bias`` (n_out,) in the ``hidden``
init group (n_in = 2P for the first layer), ``output.weight`` (H, P) and ``output.bias`` (P,)
in ``output``. Dropout site ``hidden``: after each hidden layer's activation.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ...spec.schema import Spec
from .base import Architecture, DropoutMasks, Forward, Param

__all__ = ["OneHotMlpArch", "OneHotMlpTwin", "from_spec"]

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu, "gelu": F.gelu, "tanh": torch.tanh,
}
_MODULES: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


def _padded_width(width: int) -> int:
    """``width`` rounded up to a multiple of four (16 bytes of float32)."""
    return -(-width // 4) * 4


def _pad_last(mask: torch.Tensor, width: int) -> torch.Tensor:
    """A keep-mask widened with zeros to a padded layer's width."""
    return mask if mask.shape[-1] == width else F.pad(mask, (0, width - mask.shape[-1]))


class OneHotMlpArch(Architecture):
    """The one-hot MLP at fixed sizes: P tokens (= P classes), hidden widths, activation."""

    name: ClassVar[str] = "onehot_mlp"
    groups: ClassVar[tuple[str, ...]] = ("hidden", "output")
    sites: ClassVar[tuple[str, ...]] = ("hidden",)

    def __init__(self, n_tokens: int, hidden: int | Sequence[int], activation: str = "relu",
                 n_classes: int | None = None):
        widths = (hidden,) if isinstance(hidden, int) else tuple(int(w) for w in hidden)
        if not widths or any(w < 1 for w in widths):
            raise ValueError(f"hidden widths must be positive and at least one: {hidden!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r} (one of "
                             f"{', '.join(_ACTIVATIONS)})")
        self.n_tokens = int(n_tokens)
        self.n_classes = int(n_tokens if n_classes is None else n_classes)
        self.hidden = widths
        self.activation = activation

    @classmethod
    def from_spec(cls, spec: Spec) -> OneHotMlpArch:
        """From ``spec.model.hidden`` (int or list), ``spec.model.activation`` and
        ``spec.task.tokens`` (P tokens and P classes; 120 for s5)."""
        return from_spec(spec)

    def layout(self) -> list[Param]:
        out: list[Param] = []
        n_in = 2 * self.n_tokens
        for index, width in enumerate(self.hidden):
            out.append(Param(f"hidden.{index}.weight", (n_in, width), n_in, width, "hidden"))
            out.append(Param(f"hidden.{index}.bias", (width,), n_in, width, "hidden",
                             is_bias=True))
            n_in = width
        out.append(Param("output.weight", (n_in, self.n_classes), n_in, self.n_classes,
                         "output"))
        out.append(Param("output.bias", (self.n_classes,), n_in, self.n_classes, "output",
                         is_bias=True))
        return out

    def mask_shapes(self, n: int) -> list[tuple[str, tuple[int, ...]]]:
        return [("hidden", (n, width)) for width in self.hidden]

    def forward(self, params: Mapping[str, torch.Tensor], pairs: torch.Tensor,
                masks: DropoutMasks | None = None,
                record: Collection[str] = ()) -> Forward:
        act = _ACTIVATIONS[self.activation]
        layers = self._padded_layers(params)
        recorded: list[torch.Tensor] = []
        h = act(self._first_preactivation(layers[0], pairs))
        for index, width in enumerate(self.hidden):
            if index > 0:
                weight, bias = layers[index]
                h = act(torch.baddbmm(bias[:, None, :], h, weight))
            if "hidden" in record:
                recorded.append(h[..., :width])
            if masks is not None:
                h = h * _pad_last(masks("hidden", (*h.shape[:2], width)), h.shape[-1])
        weight, bias = layers[-1]
        logits = torch.baddbmm(bias[:, None, :], h, weight)[..., :self.n_classes]
        return Forward(logits, {"hidden": recorded} if "hidden" in record else {})

    def _padded_layers(self, params: Mapping[str, torch.Tensor]
                       ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each layer's (weight, bias), its output width padded with zeros to a multiple of
        four (and the next weight's input rows to match). Why: a batched matmul on the CPU
        (MKL) rounds a member's block differently when the block does not start 16-byte
        aligned, so an odd width (P = 97) would make a member's logits and gradients differ
        in the last bit between alone and in a population. The padded units are exact zeros
        (relu, gelu and tanh of 0 are 0) and add exact zeros downstream."""
        names = [f"hidden.{i}" for i in range(len(self.hidden))] + ["output"]
        out: list[tuple[torch.Tensor, torch.Tensor]] = []
        n_in = 2 * self.n_tokens  # the first layer is gathered, never a matmul
        for name in names:
            weight, bias = params[f"{name}.weight"], params[f"{name}.bias"]
            rows = n_in - weight.shape[1]
            cols = _padded_width(weight.shape[2]) - weight.shape[2]
            if rows or cols:
                weight = F.pad(weight, (0, cols, 0, rows))
                bias = F.pad(bias, (0, cols))
            out.append((weight, bias))
            n_in = weight.shape[2]
        return out

    @staticmethod
    def _first_preactivation(layer: tuple[torch.Tensor, torch.Tensor],
                             pairs: torch.Tensor) -> torch.Tensor:
        """``W1[a] + W1[P + b] + b1`` for every member: (K, N, H0), a gather of two rows of
        each member's own W1 (its rows are offset by k·2P in the flattened (K·2P, H0))."""
        weight, bias = layer  # (K, 2P, H0), (K, H0)
        k, two_p, width = weight.shape
        flat = weight.reshape(k * two_p, width)
        # row of (a, b) in the flat table: a + k·2P and P + b + k·2P
        offsets = torch.tensor([0, two_p // 2], device=pairs.device) \
            + torch.arange(k, device=pairs.device)[:, None, None] * two_p  # (K, 1, 2)
        # F.embedding, not indexing: its CPU backward adds each row's gradients in the order
        # the pairs come, so a member's gradient does not depend on the others (indexing's
        # accumulating backward gave one member a different last bit in a population)
        rows = F.embedding(pairs + offsets, flat)  # (K, N, 2, H0)
        return rows[:, :, 0] + rows[:, :, 1] + bias[:, None, :]

    @property
    def relu_sites(self) -> tuple[str, ...]:
        return ("hidden",) if self.activation == "relu" else ()

    def token_embedding(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(K, P, 2·H0): the first layer's two (P, H0) weight blocks are the token embeddings
        (the rows a left operand and a right operand add in), side by side: row i is
        ``[W1[i], W1[P + i]]``."""
        weight = params["hidden.0.weight"]
        p = self.n_tokens
        return torch.cat([weight[:, :p], weight[:, p:]], dim=2)

    @property
    def embedding_params(self) -> tuple[str, ...]:
        """``embedding_lr_scale`` acts on the first layer, which holds the embeddings."""
        return ("hidden.0.weight",)

    def twin(self, params: Mapping[str, torch.Tensor]) -> nn.Module:
        return OneHotMlpTwin(self, params)


class OneHotMlpTwin(nn.Module):
    """One member of :class:`OneHotMlpArch` written plainly: ``F.one_hot`` of both operands,
    concatenated, then ``nn.Linear`` and the activation per hidden layer and an ``nn.Linear``
    to the logits. (N, 2) int64 pairs in, (N, P) logits out."""

    def __init__(self, arch: OneHotMlpArch, params: Mapping[str, torch.Tensor]):
        super().__init__()
        self.n_tokens = arch.n_tokens
        layers: list[nn.Module] = []
        n_in = 2 * arch.n_tokens
        for width in arch.hidden:
            layers += [nn.Linear(n_in, width), _MODULES[arch.activation]()]
            n_in = width
        layers.append(nn.Linear(n_in, arch.n_classes))
        self.layers = nn.Sequential(*layers)
        weight = params["hidden.0.weight"]
        self.to(device=weight.device, dtype=weight.dtype)
        linears = [m for m in self.layers if isinstance(m, nn.Linear)]
        names = [f"hidden.{i}" for i in range(len(arch.hidden))] + ["output"]
        with torch.no_grad():
            for linear, name in zip(linears, names, strict=True):
                linear.weight.copy_(params[f"{name}.weight"].T)  # ours is in × out
                linear.bias.copy_(params[f"{name}.bias"])
        self.eval()

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        first = self.layers[0]
        assert isinstance(first, nn.Linear)
        # concat(onehot(a), onehot(b)), in the weights' dtype
        x = F.one_hot(pairs, self.n_tokens).flatten(1).to(first.weight.dtype)
        return self.layers(x)


def from_spec(spec: Spec) -> OneHotMlpArch:
    """The one-hot MLP of a spec: ``model.hidden`` (int or list), ``model.activation``,
    ``task.tokens`` tokens and classes (P; 120 for s5)."""
    return OneHotMlpArch(spec.task.tokens, spec.model.hidden_sizes, spec.model.activation)
