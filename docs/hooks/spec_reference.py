"""mkdocs hook: the spec reference page, generated from the spec's JSON Schema.

On the page that holds the marker ``<!-- spec-reference -->`` the marker becomes one table per
section of ``grokexp.spec.schema.Spec`` (key, type, default, bounds or choices, description),
read from ``Spec.model_json_schema()``: a key added to the schema documents itself. A nested
table (``[init.embedding]``, ``[train.grad_filter]``) gets a section of its own; tables of the
same model share one section.
"""

from __future__ import annotations

import json
import re
from typing import Any

MARKER = "<!-- spec-reference -->"
_BOUNDS = (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"),
           ("exclusiveMaximum", "<"), ("minLength", "length ≥"), ("maxLength", "length ≤"),
           ("minItems", "items ≥"), ("maxItems", "items ≤"))
_TYPES = {"string": "string", "integer": "integer", "number": "float", "boolean": "boolean",
          "object": "table", "null": "none"}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER not in markdown:
        return markdown
    from grokexp.spec.schema import Spec

    return markdown.replace(MARKER, render(Spec.model_json_schema(), _models(Spec)))


def _models(root: type) -> dict[str, type]:
    """Every pydantic model reachable from ``root``, by the title its schema gives it.

    A default made by a factory (a list) is not in the JSON Schema; the model still has it.
    """
    from pydantic import BaseModel

    found: dict[str, type] = {}
    todo = [root]
    while todo:
        model = todo.pop()
        if model.__name__ in found:
            continue
        found[model.__name__] = model
        for field in model.model_fields.values():
            for arg in _walk(field.annotation):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    todo.append(arg)
    return found


def _walk(annotation: Any) -> list[Any]:
    args = list(getattr(annotation, "__args__", ()) or ())
    return [annotation, *[a for arg in args for a in _walk(arg)]]


def render(schema: dict[str, Any], models: dict[str, type] | None = None) -> str:
    """The whole reference: top-level keys first, then every section in schema order."""
    defs = schema.get("$defs", {})
    models = models or {}
    sections: list[tuple[str, str | None, dict[str, Any]]] = []  # (path, def name, schema)
    paths: dict[str, list[str]] = {}  # def name -> every path that uses it
    _collect("", schema, defs, sections, paths)
    out = ["## Top-level keys\n", _table("", schema, defs, models)]
    for path, name, node in sections:
        if name is not None and paths[name][0] != path:
            continue  # drawn once, under its first path
        shown = paths[name] if name is not None else [path]
        out.append(f"## {', '.join(f'`[{p}]`' for p in shown)}\n")
        description = _text(node.get("description", ""))
        if description:
            out.append(description + "\n")
        if len(shown) > 1:
            out.append("These tables share one set of keys.\n")
        out.append(_table(path, node, defs, models))
    return "\n".join(out)


def _collect(prefix: str, node: dict[str, Any], defs: dict[str, Any],
             sections: list[tuple[str, str | None, dict[str, Any]]],
             paths: dict[str, list[str]]) -> None:
    for key, prop in node.get("properties", {}).items():
        name, target = _object(prop, defs)
        if target is None or (prefix and name is None and "properties" not in target):
            continue  # a free table below the top ([optimize.space]) is one row, not a section
        path = f"{prefix}.{key}" if prefix else key
        sections.append((path, name, target))
        if name is not None:
            paths.setdefault(name, []).append(path)
        _collect(path, target, defs, sections, paths)


def _object(prop: dict[str, Any], defs: dict[str, Any]) -> tuple[str | None, dict | None]:
    """The section a property opens: (its $defs name or None, its schema), or (None, None)."""
    for option in [prop, *prop.get("anyOf", [])]:
        if "$ref" in option:
            name = option["$ref"].rsplit("/", 1)[-1]
            return name, defs[name]
        if option.get("type") == "object" and ("properties" in option or not prop.get("$ref")
                                               and option.get("additionalProperties") is True
                                               and "title" in prop):
            return None, option
    return None, None


def _table(path: str, node: dict[str, Any], defs: dict[str, Any],
           models: dict[str, type]) -> str:
    rows = ["| key | type | default | bounds or choices | description |",
            "|---|---|---|---|---|"]
    required = set(node.get("required", []))
    for key, prop in node.get("properties", {}).items():
        name, target = _object(prop, defs)
        if target is not None and path == "":
            continue  # a section of its own below
        dotted = f"{path}.{key}" if path else key
        opens = target is not None and (name is not None or "properties" in target)
        kind = f"table `[{dotted}]`" if opens else _type(prop, defs)
        default = "required" if key in required else _default(prop, models.get(
            node.get("title", "Spec")), key)
        rows.append(f"| `{key}` | {kind} | {default} | {_cell(_bounds(prop))} | "
                    f"{_cell(_text(prop.get('description', '')))} |")
    if node.get("additionalProperties") is True and not node.get("properties"):
        rows.append("| *a dotted key* | list | – | – | the values it takes; see [Writing specs]"
                    "(specs.md#sweeps-are-populations) |")
    if len(rows) == 2:
        return ""
    return "\n".join(rows) + "\n"


def _options(prop: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in prop.get("anyOf", [prop]) if o.get("type") != "null"] or [prop]


def _type(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    names = []
    for option in _options(prop):
        if "$ref" in option:
            names.append("table")
        elif option.get("type") == "array" and "prefixItems" in option:
            names.append("[" + ", ".join(_type(i, defs) for i in option["prefixItems"]) + "]")
        elif option.get("type") == "array":
            item = option.get("items", {})
            inner = _type(item, defs) if item else "any"
            names.append(f"list of {inner}")
        elif "enum" in option or "const" in option:
            names.append(_TYPES.get(option.get("type", "string"), "string"))
        else:
            names.append(_TYPES.get(option.get("type", ""), option.get("type", "any")))
    optional = any(o.get("type") == "null" for o in prop.get("anyOf", []))
    text = " or ".join(dict.fromkeys(names))
    return f"{text} (optional)" if optional else text


def _default(prop: dict[str, Any], model: type | None, key: str) -> str:
    if "default" in prop:
        value = prop["default"]
    elif model is not None and key in getattr(model, "model_fields", {}):
        value = model.model_fields[key].get_default(call_default_factory=True)
    else:
        return "–"
    if value is None:
        return "none"
    return _cell(f"`{json.dumps(value, ensure_ascii=False)}`")


def _bounds(prop: dict[str, Any]) -> str:
    parts: list[str] = []
    for option in _options(prop):
        if "enum" in option:
            parts.append(" ".join(f"`{json.dumps(v)}`" for v in option["enum"]))
        if "const" in option:
            parts.append(f"`{json.dumps(option['const'])}`")
        parts += [f"{sign} {_number(option[key])}" for key, sign in _BOUNDS
                  if key in option and not (option.get("prefixItems") and "Items" in key)]
        item = option.get("items")
        if isinstance(item, dict) and item:
            inner = _bounds(item)
            if inner != "–":
                parts.append(f"each {inner}")
    return ", ".join(parts) if parts else "–"


def _number(value: float) -> str:
    if value == 2**63 - 1:
        return "2⁶³ − 1"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _text(text: str) -> str:
    """A docstring as one Markdown paragraph: ``code`` becomes `code`."""
    return re.sub(r"``([^`]+)``", r"`\1`", " ".join(text.split()))


def _cell(text: str) -> str:
    return text.replace("|", "\\|") if text else "–"
