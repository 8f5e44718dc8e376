"""Spec text in, ``Spec`` out, and back: parsing, ``--set`` overrides, validation, output forms.

Parsing and validation are pure (text in, ``Spec`` out); reading the file is the CLI's job.
Every problem becomes one line of a :class:`~.errors.SpecError`, ``source: path: message``.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from ..errors import SpecError
from .base import FIELD_MESSAGES
from .schema import Spec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "parse_spec_text",
    "parse_override_value",
    "set_dotted",
    "apply_overrides",
    "validate_spec",
    "load_spec",
    "spec_to_dict",
    "spec_to_toml",
    "spec_hash",
]


def parse_spec_text(text: str, source: str) -> dict[str, Any]:
    """TOML or JSON text → raw dict (JSON when the source ends in .json)."""
    try:
        if source.endswith(".json"):
            raw = json.loads(text)
        else:
            raw = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise SpecError([f"{source}: syntax error: {err}"]) from None
    if not isinstance(raw, dict):
        raise SpecError([f"{source}: the top level must be a table"])
    return raw


def parse_override_value(text: str) -> Any:
    """A ``--set`` value as a TOML literal (``1e-3``, ``[1, 2]``, ``true``); else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict, creating tables on the way."""
    parts = dotted.split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise SpecError([f"{'.'.join(parts[: i + 1])}: is a value, not a table"])
        node = child
    node[parts[-1]] = value


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Merge ``dotted.key=value`` strings into a deep copy of the raw dict."""
    merged: dict[str, Any] = json.loads(json.dumps(raw))
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        shown = item if item.isprintable() else json.dumps(item)  # one line, always
        if not sep or not key or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", key):
            raise SpecError([f"--set {shown}: expected dotted.key=value"])
        try:
            set_dotted(merged, key, parse_override_value(value.strip()))
        except SpecError as err:
            raise SpecError([f"--set {shown}: {p}" for p in err.problems]) from None
    return merged


def _format_error(source: str, error: Any) -> str:
    loc = [str(p) for p in error["loc"] if not str(p).startswith(("function-", "list["))]
    path = ".".join(p for p in loc if p not in {"int", "float", "str", "bool"}) or "(top)"
    template = FIELD_MESSAGES.get(error["type"])
    ctx = error.get("ctx") or {}
    if template is not None:
        msg = template.format(**ctx)
    elif error["type"] == "literal_error":
        msg = f"must be one of {ctx.get('expected', '')}"
    else:
        msg = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] not in {"extra_forbidden", "missing"} and "input" in error:
        got = error["input"]
        if not isinstance(got, (dict, list)):
            msg += f" (got {json.dumps(got) if isinstance(got, str) else got})"
    return f"{source}: {path}: {msg}"


def validate_spec(raw: Mapping[str, Any], source: str) -> Spec:
    """Raw dict → frozen Spec, or a SpecError with one line per problem."""
    try:
        spec = Spec.model_validate(dict(raw))
    except ValidationError as err:
        lines = list(dict.fromkeys(_format_error(source, e) for e in err.errors()))
        raise SpecError(lines) from None
    problems = spec.semantic_problems()
    if problems:
        raise SpecError([f"{source}: {path}: {msg}" for path, msg in problems])
    return spec


def load_spec(text: str, source: str, overrides: Iterable[str] = (),
              default_name: str | None = None) -> Spec:
    """Text of a spec file plus ``--set`` overrides → validated Spec."""
    raw = parse_spec_text(text, source)
    if "name" not in raw and default_name:
        raw["name"] = default_name
    return validate_spec(apply_overrides(raw, overrides), source)


# ---------------------------------------------------------------- output forms


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    """The resolved spec as plain data, without unset (None) fields: TOML can hold it."""
    return spec.model_dump(mode="json", exclude_none=True)


def spec_to_toml(spec: Spec) -> str:
    import tomli_w

    return tomli_w.dumps(spec_to_dict(spec))


def spec_hash(spec: Spec) -> str:
    """Short content hash of the resolved spec: equal specs, equal hash."""
    blob = json.dumps(spec_to_dict(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]

