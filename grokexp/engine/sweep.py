"""From one spec to its members: every variant × every point of the ``[sweep]`` grid × every
seed.

Each member is a complete spec of its own (sweep removed), so the engine, the tracker and a
later ``grokexp run`` of that member all see the same thing.

A member whose ``model.architecture`` the sweep changes leaves behind what belongs to the
spec's own architecture only: its ``[model]`` keys and ``[init.<group>]`` tables the member's
architecture lacks, and ``metrics.mc_sites`` when it names every site (the member then takes
every site of its own). What the sweep itself sets must fit the member's architecture.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import SpecError
from ..spec.architectures import leave_architecture
from ..spec.io import apply_overrides, set_dotted, spec_to_dict, validate_spec
from ..spec.schema import Spec
from ..spec.task import leave_modulus

__all__ = ["Member", "expand_members", "group_by_shape", "shape_key", "MAX_MEMBERS",
           "PER_MEMBER", "member_label"]

MAX_MEMBERS = 100_000  # members in one spec: a grid beyond this is a typo, not a study


@dataclass(frozen=True)
class Member:
    """One training run inside a population: its index, its own spec, what was varied."""

    index: int
    spec: Spec
    varied: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return member_label(self.index, self.varied)


def member_label(index: int, varied: dict[str, Any]) -> str:
    """A member's name in figures and tables: what its sweep varied, or its index."""
    if not varied:
        return f"member-{index}"
    return ", ".join(f"{k}={v}" for k, v in varied.items())


def expand_members(spec: Spec, source: str = "spec") -> list[Member]:
    """Each variant (in order) × the cartesian product of the sweep's value lists (in key
    order) × its seeds; ``split_seeds``, when given, pair with the seeds (member i of a point
    gets ``train.seed = seeds[i]`` and ``train.split_seed = split_seeds[i]``), so that the
    seeds sample the data split as well as the initialisation."""
    base = spec_to_dict(spec)
    grid = dict(base.pop("sweep", None) or {})
    seeds = grid.pop("seeds", None)
    splits = grid.pop("split_seeds", None)
    variants: list[dict[str, Any]] = grid.pop("variants", None) or [{}]
    keys = list(grid)
    count = (math.prod(len(grid[k]) for k in keys) * (len(seeds) if seeds is not None else 1)
             * len(variants))
    if count > MAX_MEMBERS:
        raise SpecError([f"{source}: sweep: {count} members, more than {MAX_MEMBERS}"])
    members: list[Member] = []
    problems: list[str] = []
    for variant, point in itertools.product(variants, itertools.product(*(grid[k]
                                                                          for k in keys))):
        for n, seed in enumerate(seeds if seeds is not None else [None]):
            varied = {**variant, **dict(zip(keys, point, strict=True))}
            if seed is not None:
                varied["train.seed"] = seed
            if splits is not None:  # validated: as many as seeds
                varied["train.split_seed"] = splits[n]
            raw = apply_overrides(base, [])
            for key, value in varied.items():
                set_dotted(raw, key, value)
            leave_architecture(raw, spec.model.architecture, varied)
            leave_modulus(raw, varied)
            try:
                member_spec = validate_spec(raw, source)
            except SpecError as err:
                problems += [p.replace(f"{source}: ", f"{source}: sweep: ", 1)
                             for p in err.problems]
                continue
            members.append(Member(index=len(members), spec=member_spec, varied=varied))
    if problems:
        raise SpecError(list(dict.fromkeys(problems)))
    return members


# What the engine gives each member on its own (optimiser settings as per-member tensors, its
# generators, split, hold and threshold, its init draw and frozen layers): members may differ
# here and still share a population. Any other difference, in any section, splits them, so a
# new field can never be silently taken from the population's first member.
PER_MEMBER = ("train.lr", "train.weight_decay", "train.betas", "train.eps", "train.seed",
              "train.split_seed", "train.stop_after_generalized", "metrics.grok_threshold",
              "init", "train.grad_filter", "train.orthogonal_grad", "train.weight_norm",
              "train.embedding_lr_scale", "metrics.figures")


def shape_key(spec: Spec) -> tuple[Any, ...]:
    """Members with equal keys can train in lockstep as one population: the whole spec
    except the settings in PER_MEMBER."""
    raw = spec_to_dict(spec)
    for path in PER_MEMBER:
        *parents, leaf = path.split(".")
        table = raw
        for part in parents:
            table = table.get(part, {})
        table.pop(leaf, None)
    return (json.dumps(raw, sort_keys=True, separators=(",", ":")),)


def group_by_shape(members: Sequence[Member]) -> list[list[Member]]:
    """Split members into populations of equal shape, keeping first-seen order."""
    groups: dict[tuple[Any, ...], list[Member]] = {}
    for member in members:
        groups.setdefault(shape_key(member.spec), []).append(member)
    return list(groups.values())
