"""Everything the API reference (docs/api.md) shows says what it is for.

docs/api.md names modules with mkdocstrings' ``::: module`` and, optionally, the members it
shows; each of those modules, classes, functions and public methods must have a docstring
(mkdocstrings would otherwise show a bare signature).
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def shown_objects() -> list[tuple[str, object]]:
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    out: list[tuple[str, object]] = []
    for block in re.split(r"^::: ", text, flags=re.M)[1:]:
        name = block.split()[0]
        module = importlib.import_module(name)
        out.append((name, module))
        listed = re.search(r"members:\s*\[([^\]]*)\]", block.split("\n::: ")[0])
        names = ([n.strip() for n in listed.group(1).split(",")] if listed else
                 [n for n, obj in vars(module).items() if not n.startswith("_")
                  and (inspect.isfunction(obj) or inspect.isclass(obj))
                  and getattr(obj, "__module__", None) == name])
        for member in names:
            obj = getattr(module, member)
            out.append((f"{name}.{member}", obj))
            if inspect.isclass(obj):
                out += [(f"{name}.{member}.{m}", f) for m, f in vars(obj).items()
                        if not m.startswith("_") and inspect.isfunction(f)]
    return out


def documented(obj: object) -> bool:
    doc = (obj.__doc__ or "").strip()
    # a dataclass without a docstring gets its signature as __doc__: not a description
    return bool(doc) and not (inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("))


def test_every_shown_object_has_a_docstring():
    objects = shown_objects()
    assert len(objects) > 10
    bare = [name for name, obj in objects if not documented(obj)]
    assert bare == [], f"no docstring: {bare}"


def test_every_spec_key_documents_itself():
    """docs/spec-reference.md is generated from the schema: each key's description is the
    docstring under its field, so a new key without one would show an empty cell."""
    from pydantic import BaseModel

    from grokexp.spec.schema import Spec

    def tables(annotation):
        return [a for a in getattr(annotation, "__args__", (annotation,))
                if isinstance(a, type) and issubclass(a, BaseModel)]

    bare, seen, todo = [], set(), [("", Spec)]
    while todo:
        prefix, model = todo.pop()
        for name, field in model.model_fields.items():
            subs = tables(field.annotation)
            if subs:  # a table: its own docstring describes it
                todo += [(f"{prefix}{name}.", sub) for sub in subs if sub not in seen]
                seen.update(subs)
            elif not (field.description or "").strip():
                bare.append(f"{prefix}{name}")
    assert bare == [], f"spec keys without a description: {bare}"
