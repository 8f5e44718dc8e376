"""Initial parameters of one member, drawn from its own generator per the spec's [init].

Layout (in × out, so a batch is ``x @ W``): ``embedding`` (P, d), ``hidden.L.weight``
(n_in, n_out), ``hidden.L.bias`` (n_out,), ``output.weight`` (H, P), ``output.bias`` (P,).
Fans follow the paper: σ = sqrt(2/(n_in+n_out)) for Xavier normal, biases included.
"""

from __future__ import annotations

import math

import torch

from ..spec.init import ResolvedInit
from ..spec.schema import Spec
from .seeding import generator_for

__all__ = ["parameter_layout", "draw", "init_member", "layer_of"]


def parameter_layout(spec: Spec) -> list[tuple[str, tuple[int, ...], int, int]]:
    """(name, shape, fan_in, fan_out) for every parameter, in draw order."""
    p, d = spec.task.modulus, spec.model.embedding_dim
    layout: list[tuple[str, tuple[int, ...], int, int]] = [("embedding", (p, d), d, p)]
    n_in = 2 * d
    for index, width in enumerate(spec.model.hidden_sizes):
        layout.append((f"hidden.{index}.weight", (n_in, width), n_in, width))
        layout.append((f"hidden.{index}.bias", (width,), n_in, width))
        n_in = width
    layout.append(("output.weight", (n_in, p), n_in, p))
    layout.append(("output.bias", (p,), n_in, p))
    return layout


def layer_of(name: str) -> str:
    """'hidden.0.bias' → 'hidden': the [init.<layer>] table that governs a parameter."""
    return name.split(".", 1)[0]


def draw(recipe: ResolvedInit, shape: tuple[int, ...], fan_in: int, fan_out: int,
         generator: torch.Generator) -> torch.Tensor:
    """One tensor from a recipe: the scheme's draw, times ``scale``, plus ``shift``."""
    if recipe.scheme == "xavier_normal":
        out = torch.randn(shape, generator=generator) * math.sqrt(2.0 / (fan_in + fan_out))
    elif recipe.scheme == "xavier_uniform":
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        out = (torch.rand(shape, generator=generator) * 2 - 1) * bound
    elif recipe.scheme == "kaiming_normal":
        out = torch.randn(shape, generator=generator) * math.sqrt(2.0 / fan_in)
    elif recipe.scheme == "kaiming_uniform":
        out = (torch.rand(shape, generator=generator) * 2 - 1) * math.sqrt(6.0 / fan_in)
    elif recipe.scheme == "normal":
        assert recipe.std is not None
        out = torch.randn(shape, generator=generator) * recipe.std + (recipe.mean or 0.0)
    elif recipe.scheme == "uniform":
        assert recipe.low is not None and recipe.high is not None
        out = recipe.low + torch.rand(shape, generator=generator) * (recipe.high - recipe.low)
    elif recipe.scheme == "constant":
        assert recipe.value is not None
        out = torch.full(shape, float(recipe.value))
    else:  # pragma: no cover - the spec's Literal forbids it
        raise AssertionError(recipe.scheme)
    return out * recipe.scale + recipe.shift


def init_member(spec: Spec) -> dict[str, torch.Tensor]:
    """All parameters of one member (CPU, float32), from the generator of ``train.seed``."""
    generator = generator_for(spec.train.seed, "init")
    params: dict[str, torch.Tensor] = {}
    for name, shape, fan_in, fan_out in parameter_layout(spec):
        recipe = spec.init.resolve(layer_of(name), "bias" if name.endswith(".bias") else "weight")
        params[name] = draw(recipe, shape, fan_in, fan_out, generator).float()
    return params
