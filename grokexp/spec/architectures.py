"""Each architecture the ``[model]`` section can name: its keys, init groups and dropout sites.

Written once here (the spec layer cannot import the engine); each engine architecture
(``grokexp/engine/arch/``) declares the same groups and sites, and a test holds them equal.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ArchitectureFacts", "ARCHITECTURES", "ALL_GROUPS", "ALL_SITES", "summary",
           "leave_architecture"]


@dataclass(frozen=True)
class ArchitectureFacts:
    """What the spec needs to know of one architecture."""

    keys: dict[str, Any]  # its [model] keys and their defaults
    groups: tuple[str, ...]  # its [init.<group>] tables
    sites: tuple[str, ...]  # its dropout sites (metrics.mc_sites)
    about: str  # one line for `grokexp validate` and the docs
    # a key whose values are narrower here than the field allows: key -> the values it takes
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)


ARCHITECTURES: dict[str, ArchitectureFacts] = {
    "mlp": ArchitectureFacts(
        keys={"embedding_dim": 128, "hidden": 256, "activation": "relu",
              "embedding_activation": "none"},
        groups=("embedding", "hidden", "output"),
        sites=("embedding", "hidden"),
        about="the paper's model: an embedding per operand, concatenated, ReLU layers, "
              "P outputs"),
    "transformer": ArchitectureFacts(
        keys={"d_model": 128, "n_heads": 4, "d_mlp": 512, "n_layers": 1,
              "layer_norm": False, "activation": "relu"},
        groups=("embedding", "positional", "attention", "mlp", "unembed"),
        sites=("embedding", "attention", "mlp"),
        about="a decoder-only transformer on the sequence 'a b =', read at '=' (Nanda et al.; "
              "n_layers = 2 with layer_norm: Power et al.)",
        choices={"activation": ("relu", "gelu")}),
    "onehot_mlp": ArchitectureFacts(
        keys={"hidden": 256, "activation": "relu"},
        groups=("hidden", "output"),
        sites=("hidden",),
        about="an MLP on concat(onehot(a), onehot(b)) (Gromov; Doshi et al.; Prieto et al.)"),
}

# every init group and dropout site some architecture has, in first-seen order
ALL_GROUPS = tuple(dict.fromkeys(g for a in ARCHITECTURES.values() for g in a.groups))
ALL_SITES = tuple(dict.fromkeys(s for a in ARCHITECTURES.values() for s in a.sites))


def summary(name: str) -> str:
    """One line naming an architecture's init groups and dropout sites (grokexp validate)."""
    facts = ARCHITECTURES[name]
    return (f"architecture {name}: init groups {', '.join(facts.groups)}; "
            f"dropout sites {', '.join(facts.sites)}")


def leave_architecture(raw: dict[str, Any], base: str, changed: Collection[str]) -> None:
    """Where a sweep or a study point moves a spec of architecture ``base`` to another one,
    drop from its raw dict (in place) what only ``base`` has: its ``[model]`` keys and
    ``[init.<group>]`` tables the new architecture lacks, and ``metrics.mc_sites`` when it
    names every site of ``base`` (the new one then takes every site of its own). The dotted
    keys in ``changed`` were set by the sweep or point itself: they stay, and must fit."""
    model, init, metrics = (raw.get(k) for k in ("model", "init", "metrics"))
    if not isinstance(model, dict):  # a whole table swept: validation says what is wrong
        return
    name = model.get("architecture", "mlp")
    if not isinstance(name, str) or name == base or name not in ARCHITECTURES:
        return
    facts, own = ARCHITECTURES[name], ARCHITECTURES[base]
    for key in [k for k in model if k != "architecture" and k not in facts.keys]:
        if f"model.{key}" not in changed:
            del model[key]
    if isinstance(init, dict):
        for group in [g for g in own.groups if g in init and g not in facts.groups]:
            if not any(k == f"init.{group}" or k.startswith(f"init.{group}.") for k in changed):
                del init[group]
    if isinstance(metrics, dict) and "metrics.mc_sites" not in changed:
        sites = metrics.get("mc_sites")
        if isinstance(sites, list) and set(map(str, sites)) == set(own.sites):
            del metrics["mc_sites"]
