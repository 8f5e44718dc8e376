"""The ``[model]`` section: which architecture, and that architecture's sizes.

One table holds every architecture's keys; ``architecture`` chooses whose apply. The keys of
the chosen architecture take its defaults (spec/architectures.py); a key of another
architecture given in the spec is an error, and is never dumped, logged or hashed, so an mlp
spec reads, logs and hashes as it did before there were other architectures (plus
``architecture`` itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from .architectures import ARCHITECTURES
from .base import Section

__all__ = ["ModelSpec", "ArchitectureName"]

ArchitectureName = Literal["mlp", "transformer", "onehot_mlp"]
_MLP, _TRANSFORMER = ARCHITECTURES["mlp"].keys, ARCHITECTURES["transformer"].keys
MAX_WIDTH = 65536


class ModelSpec(Section):
    """The network: ``architecture`` and its keys (each architecture takes only its own).

    ``mlp`` (the paper's): an embedding of each operand, concatenated, then MLP layers and a
    P-way output; keys ``embedding_dim``, ``hidden``, ``activation``, ``embedding_activation``.
    ``transformer``: a decoder on the sequence ``a b =`` with learned positional embeddings,
    causal attention, logits read at ``=``; keys ``d_model``, ``n_heads``, ``d_mlp``,
    ``n_layers``, ``layer_norm``, ``activation`` (Nanda et al.'s model by default; ``n_layers
    = 2`` with ``layer_norm = true`` is Power et al.'s). ``onehot_mlp``: an MLP on
    ``concat(onehot(a), onehot(b))``; keys ``hidden``, ``activation``.
    """

    architecture: ArchitectureName = "mlp"
    """Which network: 'mlp' (the paper's), 'transformer' or 'onehot_mlp'."""
    embedding_dim: int = Field(_MLP["embedding_dim"], ge=1, le=MAX_WIDTH)
    """mlp: width of each operand's embedding (the hidden layer sees twice this)."""
    hidden: int | list[int] = _MLP["hidden"]
    """mlp, onehot_mlp: width of the hidden layer, or a list of widths for several."""
    activation: Literal["relu", "gelu", "tanh"] = "relu"
    """Nonlinearity after each hidden layer (mlp, onehot_mlp) or in the transformer's MLP
    ('relu' or 'gelu')."""
    embedding_activation: Literal["none", "relu"] = _MLP["embedding_activation"]
    """mlp: 'relu' puts a ReLU after the embedding (the paper's Sec. 3.2 variant)."""
    d_model: int = Field(_TRANSFORMER["d_model"], ge=1, le=MAX_WIDTH)
    """transformer: width of the residual stream (a multiple of n_heads)."""
    n_heads: int = Field(_TRANSFORMER["n_heads"], ge=1, le=1024)
    """transformer: attention heads per layer (each of width d_model / n_heads)."""
    d_mlp: int = Field(_TRANSFORMER["d_mlp"], ge=1, le=4 * MAX_WIDTH)
    """transformer: hidden width of each layer's MLP."""
    n_layers: int = Field(_TRANSFORMER["n_layers"], ge=1, le=64)
    """transformer: number of blocks (attention then MLP, each added to the residual)."""
    layer_norm: bool = _TRANSFORMER["layer_norm"]
    """transformer: LayerNorm before attention, before the MLP and before the unembedding."""

    @model_validator(mode="before")
    @classmethod
    def _defaults_of_architecture(cls, raw: Any) -> Any:
        """The chosen architecture's defaults under what the table gives (like Grokfast's
        kinds); a key of another architecture stays as given, for ``problems`` to name."""
        if not isinstance(raw, Mapping):
            return raw
        name = raw.get("architecture", "mlp")
        if not isinstance(name, str) or name not in ARCHITECTURES:
            return raw
        return {**ARCHITECTURES[name].keys, **raw}

    @field_validator("hidden")
    @classmethod
    def _positive_widths(cls, value: int | list[int]) -> int | list[int]:
        widths = [value] if isinstance(value, int) else value
        if not widths:
            raise ValueError("needs at least one hidden layer")
        if any(w < 1 or w > MAX_WIDTH for w in widths):
            raise ValueError(f"widths must be between 1 and {MAX_WIDTH}")
        return value

    @model_serializer(mode="wrap")
    def _own_keys_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Only the architecture's own keys are dumped: what is logged, hashed and written."""
        own = ARCHITECTURES[self.architecture].keys
        dumped: dict[str, Any] = handler(self)
        return {k: v for k, v in dumped.items() if k == "architecture" or k in own}

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        return (self.hidden,) if isinstance(self.hidden, int) else tuple(self.hidden)

    @property
    def own_keys(self) -> tuple[str, ...]:
        return tuple(ARCHITECTURES[self.architecture].keys)

    def problems(self) -> list[tuple[str, str]]:
        """(path, message) for a key of another architecture and rules across keys."""
        name, own = self.architecture, self.own_keys
        out = [(f"model.{key}", f"not a key of architecture '{name}' (its keys: "
                                f"{', '.join(own)})")
               for key in type(self).model_fields
               if key in self.model_fields_set and key != "architecture" and key not in own]
        for key, allowed in ARCHITECTURES[name].choices.items():
            value = getattr(self, key)
            if value not in allowed:
                shown = " or ".join(f"'{v}'" for v in allowed)
                out.append((f"model.{key}", f"must be {shown} for architecture '{name}' "
                                            f"(got \"{value}\")"))
        if name == "transformer" and self.d_model % self.n_heads:
            out.append(("model.d_model", f"must be a multiple of n_heads = {self.n_heads} "
                                         f"(got {self.d_model})"))
        return out
