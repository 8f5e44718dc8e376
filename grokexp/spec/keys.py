"""Dotted keys of the spec: which exist, and the nearest known ones to a typo.

One walk over the section models serves the checks (a ``[sweep]`` or ``[optimize.space]``
key must name a field: :func:`known_path`) and the messages (``unknown key; did you mean
…?``: :func:`suggestion`). Every function takes the root model, so that schema.py, which
defines it, can use them too.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel

from .optimize import SearchDim

__all__ = ["table_model", "known_path", "known_keys", "all_keys", "suggestion"]


def table_model(annotation: Any) -> type[BaseModel] | None:
    """The section model a field's annotation holds (``LayerInit | None`` → LayerInit), or
    None for a plain value."""
    return next((a for a in getattr(annotation, "__args__", (annotation,))
                 if isinstance(a, type) and issubclass(a, BaseModel)), None)


def known_path(root: Any, dotted: str) -> bool:
    """Whether a dotted key names a field (a value or a whole table) of ``root``."""
    model: Any = root
    for part in dotted.split("."):
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return False
        model = table_model(fields[part].annotation)
    return True


def known_keys(root: Any, parents: list[str]) -> list[str]:
    """The field names of the table at ``parents`` (dotted parts) of ``root``."""
    model: Any = root
    for part in parents:
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return []
        model = table_model(fields[part].annotation)
    return list(getattr(model, "model_fields", {}) or {})


def all_keys(root: Any, prefix: str = "") -> list[str]:
    """Every dotted key that names a value of ``root`` (what a sweep may vary)."""
    out: list[str] = []
    for name, field in root.model_fields.items():
        sub = table_model(field.annotation)
        out += all_keys(sub, f"{prefix}{name}.") if sub is not None else [f"{prefix}{name}"]
    return out


def _did_you_mean(candidates: list[str]) -> str:
    return ("; did you mean " + " or ".join(candidates) + "?") if candidates else ""


def suggestion(root: Any, path: str) -> str:
    """``; did you mean …?`` naming the known keys nearest an unknown dotted key, or ''."""
    *parents, leaf = path.split(".")
    close = difflib.get_close_matches(leaf, known_keys(root, parents), n=3, cutoff=0.75)
    if not close and parents and parents[0] in ("sweep", "optimize"):
        return _suggestion_among(root, path, parents)
    return _did_you_mean([".".join([*parents, c]) for c in close])


def _suggestion_among(root: Any, path: str, parents: list[str]) -> str:
    """For a key under ``[sweep]`` or ``[optimize.space]``: the nearest dotted spec keys (or,
    inside a search dimension, the nearest of its keys)."""
    head = 1 if parents[0] == "sweep" else 2
    prefix, key = ".".join(path.split(".")[:head]), ".".join(path.split(".")[head:])
    *tables, leaf = key.split(".")
    if parents[0] == "optimize" and ".".join(tables) in all_keys(root):  # inside a dimension
        close = difflib.get_close_matches(leaf, list(SearchDim.model_fields), n=3, cutoff=0.6)
        return _did_you_mean([f"{prefix}.{'.'.join(tables)}.{c}" for c in close])
    names = known_keys(root, tables) if tables else []
    if names:  # the table exists: compare the last part with its keys only
        close = [".".join([*tables, c])
                 for c in difflib.get_close_matches(leaf, names, n=3, cutoff=0.75)]
    else:
        close = difflib.get_close_matches(key, all_keys(root), n=3, cutoff=0.75)
    return _did_you_mean([f"{prefix}.{c}" for c in close])
