"""The ``[init]`` section: a default recipe, per-layer tables over it, and how they merge.

``init.<layer>`` overrides ``init`` for that layer's weights; biases also take ``init.bias``
and then ``init.<layer>.bias``. ``InitSpec.resolve`` merges them into one ``ResolvedInit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from .base import Section

__all__ = ["InitSpec", "LayerInit", "BiasInit", "ResolvedInit", "LAYERS"]

Scheme = Literal[
    "xavier_normal", "xavier_uniform", "kaiming_normal", "kaiming_uniform",
    "normal", "uniform", "constant",
]
LAYERS = ("embedding", "hidden", "output")


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
    """``[init.<layer>.bias]``: how that layer's bias is drawn (default: like its weights)."""


class LayerInit(_InitFields):
    """``[init.<layer>]``: overrides the default init for that layer's weights."""

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
    """``[init]``: the default for every layer, with per-layer tables that override it.

    The paper's default is Xavier normal on weights and biases, σ = sqrt(2/(n_in+n_out)),
    multiplied by ``scale`` (α) and then moved by ``shift``.
    """

    scheme: Scheme | None = "xavier_normal"
    """How every tensor is drawn unless a layer's table says otherwise."""
    scale: float | None = 1.0
    """α: multiplies every draw."""
    shift: float | None = 0.0
    """Added to every draw after scaling."""
    bias: BiasInit | None = None
    """The default for every bias (then [init.<layer>.bias])."""
    embedding: LayerInit | None = None
    """Overrides for the embedding."""
    hidden: LayerInit | None = None
    """Overrides for the hidden layer(s)."""
    output: LayerInit | None = None
    """Overrides for the output layer."""

    def layer(self, name: str) -> LayerInit | None:
        table: LayerInit | None = getattr(self, name)
        return table

    def trainable(self, layer: str) -> bool:
        table = self.layer(layer)
        return True if table is None else table.trainable

    def resolve(self, layer: str, part: Literal["weight", "bias"] = "weight") -> ResolvedInit:
        """Merge default → layer table (→ ``init.bias`` → ``init.<layer>.bias`` for biases)."""
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

