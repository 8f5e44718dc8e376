"""The ``[init]`` section: a default recipe, per-group tables over it, and how they merge.

``init.<group>`` overrides ``init`` for that group's weights; biases also take ``init.bias``
and then ``init.<group>.bias``. ``InitSpec.resolve`` merges them into one ``ResolvedInit``.
Which groups a spec may name depends on its architecture (``groups_of``; the mlp's are
embedding, hidden and output).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from .architectures import ALL_GROUPS, ARCHITECTURES
from .base import Section

__all__ = ["InitSpec", "LayerInit", "BiasInit", "ResolvedInit", "ALL_GROUPS", "groups_of"]

Scheme = Literal[
    "xavier_normal", "xavier_uniform", "kaiming_normal", "kaiming_uniform",
    "normal", "uniform", "constant",
]


def groups_of(architecture: str) -> tuple[str, ...]:
    """The ``[init.<group>]`` tables an architecture draws its parameters from."""
    return ARCHITECTURES[architecture].groups


class _InitFields(Section):
    """Fields shared by every init table; ``None`` means 'inherit from the table above'."""

    scheme: Scheme | None = None
    """How the tensor is drawn (inherited from the table above when unset)."""
    mean: float | None = None
    """Mean of 'normal'."""
    std: float | None = Field(None, gt=0.0)
    """Standard deviation of 'normal'."""
    low: float | None = None
    """Lower bound of 'uniform'."""
    high: float | None = None
    """Upper bound of 'uniform'."""
    value: float | None = None
    """The value of 'constant'."""
    scale: float | None = None
    """α: multiplies the draw."""
    shift: float | None = None
    """Added after scaling."""


class BiasInit(_InitFields):
    """``[init.<group>.bias]``: how that group's biases are drawn (default: like its
    weights)."""


class LayerInit(_InitFields):
    """``[init.<group>]``: overrides the default init for that group's weights. Each
    architecture has its own groups: mlp ``embedding``, ``hidden``, ``output``; transformer
    ``embedding``, ``positional``, ``attention``, ``mlp``, ``unembed``; onehot_mlp ``hidden``,
    ``output`` (``grokexp validate`` lists the spec's)."""

    trainable: bool = True
    """false freezes the layer at its initial values."""
    bias: BiasInit | None = None
    """How this layer's bias is drawn (default: like its weights)."""


@dataclass(frozen=True)
class ResolvedInit:
    """The concrete recipe for one tensor after the per-layer tables have been merged."""

    scheme: str
    mean: float | None
    std: float | None
    low: float | None
    high: float | None
    value: float | None
    scale: float
    shift: float

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) pairs for parameters this scheme needs but does not have."""
        needs = {"normal": ("std",), "uniform": ("low", "high"), "constant": ("value",)}
        out = [(f, f"required when scheme is '{self.scheme}'")
               for f in needs.get(self.scheme, ()) if getattr(self, f) is None]
        if self.scheme == "uniform" and not out and not (self.low < self.high):  # type: ignore[operator]
            out.append(("high", f"must be > low ({self.low}) (got {self.high})"))
        return out


class InitSpec(_InitFields):
    """``[init]``: the default for every layer, with per-group tables that override it.

    The paper's default is Xavier normal on weights and biases, σ = sqrt(2/(n_in+n_out)),
    multiplied by ``scale`` (α) and then moved by ``shift``.
    """

    scheme: Scheme | None = "xavier_normal"
    """How every tensor is drawn unless a group's table says otherwise."""
    scale: float | None = 1.0
    """α: multiplies every draw."""
    shift: float | None = 0.0
    """Added to every draw after scaling."""
    bias: BiasInit | None = None
    """The default for every bias (then [init.<group>.bias])."""
    embedding: LayerInit | None = None
    """Overrides for the token embedding (mlp, transformer)."""
    hidden: LayerInit | None = None
    """Overrides for the hidden layer(s) (mlp, onehot_mlp; the one-hot MLP's first layer is
    its first hidden layer)."""
    output: LayerInit | None = None
    """Overrides for the output layer (mlp, onehot_mlp)."""
    positional: LayerInit | None = None
    """Overrides for the positional embedding (transformer)."""
    attention: LayerInit | None = None
    """Overrides for the attention's query, key, value and output maps (transformer)."""
    mlp: LayerInit | None = None
    """Overrides for the blocks' MLP layers (transformer)."""
    unembed: LayerInit | None = None
    """Overrides for the unembedding, the map to the P logits (transformer)."""

    def layer(self, name: str) -> LayerInit | None:
        """The ``[init.<name>]`` table, or None where the spec has none."""
        if name not in ALL_GROUPS:
            raise KeyError(f"no init group {name!r} (known: {', '.join(ALL_GROUPS)})")
        table: LayerInit | None = getattr(self, name)
        return table

    def trainable(self, layer: str) -> bool:
        """False where ``[init.<layer>]`` freezes the group."""
        table = self.layer(layer)
        return True if table is None else table.trainable

    def resolve(self, layer: str, part: Literal["weight", "bias"] = "weight") -> ResolvedInit:
        """Merge default → group table (→ ``init.bias`` → ``init.<group>.bias`` for
        biases)."""
        tables: list[_InitFields | None] = [self, self.layer(layer)]
        if part == "bias":
            own = self.layer(layer)
            tables += [self.bias, own.bias if own is not None else None]
        merged: dict[str, Any] = {}
        for source in tables:
            if source is None:
                continue
            for field in _InitFields.model_fields:
                v = getattr(source, field)
                if v is not None:
                    merged[field] = v
        return ResolvedInit(
            scheme=merged.get("scheme", "xavier_normal"),
            mean=merged.get("mean"), std=merged.get("std"), low=merged.get("low"),
            high=merged.get("high"), value=merged.get("value"),
            scale=float(merged.get("scale", 1.0)), shift=float(merged.get("shift", 0.0)),
        )

