"""The architectures a population can be: one module each, registered in :data:`ARCHES`.

``architecture_of(spec)`` builds the spec's architecture at its sizes; adding one is a module
with an :class:`Architecture` subclass (and its ``from_spec``) and a line in ``ARCHES``.
"""

from __future__ import annotations

from typing import Any

from ...spec.schema import Spec
from .base import Architecture, DropoutMasks, Forward, Param
from .mlp import MlpArch
from .onehot_mlp import OneHotMlpArch
from .transformer import TransformerArch

__all__ = ["ARCHES", "Architecture", "DropoutMasks", "Forward", "Param", "architecture_of",
           "architecture_name"]

# model.architecture → its class (each has ``from_spec(spec)``)
ARCHES: dict[str, Any] = {
    "mlp": MlpArch,
    "onehot_mlp": OneHotMlpArch,
    "transformer": TransformerArch,
}


def architecture_name(spec: Spec) -> str:
    """The spec's ``model.architecture`` ("mlp" where the spec has no such key)."""
    return str(getattr(spec.model, "architecture", "mlp"))


def architecture_of(spec: Spec) -> Architecture:
    """The spec's architecture at the spec's sizes."""
    name = architecture_name(spec)
    if name not in ARCHES:
        raise ValueError(f"unknown architecture {name!r} (known: {', '.join(ARCHES)})")
    arch: Architecture = ARCHES[name].from_spec(spec)
    return arch
