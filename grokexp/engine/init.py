"""Initial parameters of one member, drawn from its own generator per the spec's [init].

The architecture's layout (``arch/``) says each parameter's name, shape, fans and init group:
the group's ``[init.<group>]`` table draws it (its bias tables for a bias), in layout order from
the member's ``init`` generator; a parameter with a ``constant`` (a LayerNorm gain) is that
constant whatever the tables say.
"""

from __future__ import annotations

import math

import torch

from ..spec.init import ResolvedInit
from ..spec.schema import Spec
from .arch import Param, architecture_of
from .seeding import generator_for

__all__ = ["parameter_layout", "draw", "init_member"]


def parameter_layout(spec: Spec) -> list[Param]:
    """Every parameter of the spec's architecture, in draw order."""
    return architecture_of(spec).layout()


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
    for param in parameter_layout(spec):
        if param.constant is not None:
            params[param.name] = torch.full(param.shape, float(param.constant))
            continue
        recipe = spec.init.resolve(param.group, "bias" if param.is_bias else "weight")
        params[param.name] = draw(recipe, param.shape, param.fan_in, param.fan_out,
                                  generator).float()
    return params
