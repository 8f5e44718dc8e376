"""Spec text in, ``Spec`` out, and back: parsing, ``--set`` overrides, validation, output forms.

Parsing and validation are pure (text in, ``Spec`` out); reading the file is the CLI's job.
Every problem becomes one line of a :class:`~.errors.SpecError`, ``source: path: message``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from ..errors import SpecError
from .base import FIELD_MESSAGES
from .keys import suggestion
from .masking import mask_url, mask_values
from .schema import Spec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "parse_spec_text",
    "parse_override_value",
    "parse_override_key",
    "set_dotted",
    "override_origins",
    "apply_overrides",
    "validate_spec",
    "load_spec",
    "spec_to_dict",
    "spec_to_toml",
    "masked_spec_toml",
    "spec_hash",
]


MAX_DEPTH = 32  # tables and arrays inside one another: a spec needs six or so
_TOO_DEEP = f"nested too deeply (more than {MAX_DEPTH} levels of tables or arrays)"


def _depth(data: Any) -> int:
    """How many tables and arrays sit inside one another in ``data`` (without recursion)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                break
            stack += [(child, level + 1) for child in
                      (node.values() if isinstance(node, dict) else node)]
    return deepest


def parse_spec_text(text: str, source: str) -> dict[str, Any]:
    """TOML or JSON text → raw dict (JSON when the source ends in .json)."""
    try:
        if source.endswith(".json"):
            raw = json.loads(text)
        else:
            raw = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise SpecError([f"{source}: syntax error: {err}"]) from None
    except RecursionError:  # the parsers recurse once per level
        raise SpecError([f"{source}: {_TOO_DEEP}"]) from None
    if not isinstance(raw, dict):
        raise SpecError([f"{source}: the top level must be a table"])
    if _depth(raw) > MAX_DEPTH:
        raise SpecError([f"{source}: {_TOO_DEEP}"])
    return raw


def parse_override_value(text: str) -> Any:
    """A ``--set`` value as a TOML literal (``1e-3``, ``[1, 2]``, ``true``); else a string.

    Only a bare word falls back to a string: text that starts like a TOML array, table or
    quoted string but does not parse is a mistake, reported as a ``ValueError``.
    """
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if text and text[0] in "[{\"'":
            raise ValueError("not a TOML value (inside a list or table, quote strings: "
                             "[\"a\", \"b\"])") from None
        return text
    except RecursionError:
        raise ValueError(_TOO_DEEP) from None
    if _depth(value) > MAX_DEPTH:
        raise ValueError(_TOO_DEEP)
    return value


def parse_override_key(text: str) -> list[str] | None:
    """A ``--set`` key as TOML reads a dotted key: ``train.lr`` → ``["train", "lr"]``,
    ``sweep."train.split_seed"`` → ``["sweep", "train.split_seed"]``; None if it is not one."""
    if not text or not text.isprintable():
        return None
    try:
        tree = tomllib.loads(f"{text} = 0")
    except tomllib.TOMLDecodeError:
        return None
    parts: list[str] = []
    node: Any = tree
    while isinstance(node, dict) and len(node) == 1:
        (key, node), = node.items()
        parts.append(key)
    return parts if node == 0 and parts else None


def set_dotted(raw: dict[str, Any], dotted: str | list[str], value: Any) -> None:
    """Set ``a.b.c`` (or the parts ``[a, b, c]``) in a nested dict, creating tables on the
    way."""
    parts = dotted.split(".") if isinstance(dotted, str) else dotted
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise SpecError([f"{'.'.join(parts[: i + 1])}: is a value, not a table"])
        node = child
    node[parts[-1]] = value


def _shown(item: str) -> str:
    """A ``--set`` item as a message shows it: as typed, or JSON-quoted when it holds
    characters that do not print (one line, always); one of over 1000 characters cut short."""
    if len(item) > 1000:  # masked first: a cut could fall between a password and its '@'
        item = mask_url(item)[:100] + "…"
    return item if item.isprintable() else json.dumps(item)


def _split_override(item: str) -> tuple[list[str], str]:
    """``key=value`` → (key parts, value text); the key may hold quoted parts with '='."""
    shown = _shown(item)
    for cut in [i for i, c in enumerate(item) if c == "="]:
        parts = parse_override_key(item[:cut].strip())
        if parts is not None:
            return parts, item[cut + 1:].strip()
    raise SpecError([f"--set {shown}: expected dotted.key=value"])


def override_origins(overrides: Iterable[str]) -> dict[str, str]:
    """Dotted path of each ``--set`` key → the ``--set`` item that set it (the last wins)."""
    origins: dict[str, str] = {}
    for item in overrides:
        try:
            parts, _ = _split_override(item)
        except SpecError:
            continue
        origins[".".join(parts)] = f"--set {_shown(item)}"
    return origins


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Merge ``dotted.key=value`` strings into a deep copy of the raw dict."""
    merged: dict[str, Any] = json.loads(json.dumps(raw))
    for item in overrides:
        shown = _shown(item)
        parts, value = _split_override(item)
        try:
            set_dotted(merged, parts, parse_override_value(value))
        except SpecError as err:
            raise SpecError([f"--set {shown}: {p}" for p in err.problems]) from None
        except ValueError as err:
            raise SpecError([f"--set {shown}: {err}"]) from None
        if _depth(merged) > MAX_DEPTH:  # a deep dotted key
            raise SpecError([f"--set {shown}: {_TOO_DEEP}"])
    return merged


def _error_path(error: Any) -> str:
    loc = [str(p) for p in error["loc"] if not str(p).startswith(("function-", "list["))]
    return ".".join(p for p in loc if p not in {"int", "float", "str", "bool"}) or "(top)"


def _error_message(error: Any) -> str:
    template = FIELD_MESSAGES.get(error["type"])
    ctx = error.get("ctx") or {}
    if template is not None:
        msg = template.format(**ctx)
    elif error["type"] == "literal_error":
        msg = f"must be one of {ctx.get('expected', '')}"
    else:
        msg = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        msg += suggestion(Spec, _error_path(error))
    return msg


def _got(error: Any) -> str:
    if error["type"] in {"extra_forbidden", "missing"} or "input" not in error:
        return ""
    got = error["input"]
    if isinstance(got, (dict, list)):
        return ""
    return f" (got {json.dumps(got) if isinstance(got, (str, bool)) else got})"


def _source_of(path: str, source: str, origins: Mapping[str, str]) -> str:
    """The ``--set`` item that set ``path`` (or a table above it), else the file."""
    parts = path.split(".")
    for n in range(len(parts), 0, -1):
        origin = origins.get(".".join(parts[:n]))
        if origin is not None:
            return origin
    below = [origin for key, origin in origins.items() if key.startswith(path + ".")]
    return below[-1] if below else source


def _format_errors(source: str, errors: list[Any], origins: Mapping[str, str]) -> list[str]:
    """One line per field: a union's branches (``int | list[int]``) merge into one line."""
    by_path: dict[str, list[Any]] = {}
    for error in errors:
        by_path.setdefault(_error_path(error), []).append(error)
    lines = []
    for path, group in by_path.items():
        messages = list(dict.fromkeys(_error_message(e) for e in group))
        msg = messages[0] + "".join(" or " + m.removeprefix("must be ") for m in messages[1:])
        got = next((g for g in map(_got, group) if g), "")
        lines.append(f"{_source_of(path, source, origins)}: {path}: {msg}{got}")
    return lines


def validate_spec(raw: Mapping[str, Any], source: str,
                  origins: Mapping[str, str] | None = None) -> Spec:
    """Raw dict → frozen Spec, or a SpecError with one line per problem.

    ``origins`` (from :func:`override_origins`) names the ``--set`` item behind a key, so a
    problem in a value typed on the command line is blamed on it, not on the file.
    """
    origins = origins or {}
    try:
        spec = Spec.model_validate(dict(raw))
    except ValidationError as err:
        raise SpecError(_format_errors(source, err.errors(), origins)) from None
    problems = spec.semantic_problems()
    if problems:
        raise SpecError([f"{_source_of(path, source, origins)}: {path}: {msg}"
                         + (suggestion(Spec, path) if msg == "unknown key" else "")
                         for path, msg in problems])
    return spec


def load_spec(text: str, source: str, overrides: Iterable[str] = (),
              default_name: str | None = None) -> Spec:
    """Text of a spec file plus ``--set`` overrides → validated Spec."""
    overrides = list(overrides)
    raw = parse_spec_text(text, source)
    if "name" not in raw and default_name:
        raw["name"] = default_name
    return validate_spec(apply_overrides(raw, overrides), source, override_origins(overrides))


# ---------------------------------------------------------------- output forms


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    """The resolved spec as plain data, without unset (None) fields: TOML can hold it."""
    return spec.model_dump(mode="json", exclude_none=True)


def spec_to_toml(spec: Spec) -> str:
    """The resolved spec as TOML, as ``grokexp run`` reads it back (secrets kept)."""
    import tomli_w

    return tomli_w.dumps(spec_to_dict(spec))


def masked_spec_toml(spec: Spec) -> str:
    """The resolved spec as TOML with every password masked value by value: what is logged,
    printed and checkpointed."""
    import tomli_w

    return tomli_w.dumps(mask_values(spec_to_dict(spec)))


def spec_hash(spec: Spec) -> str:
    """Short content hash of the resolved spec: equal specs, equal hash.

    Taken over the masked spec (what ``spec.resolved.toml`` holds), so that the hash of a
    spec with a password in a URL cannot be used to test guesses of the password offline.
    """
    blob = json.dumps(mask_values(spec_to_dict(spec)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]

