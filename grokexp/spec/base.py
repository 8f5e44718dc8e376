"""What every part of the spec builds on: the closed, frozen table and dotted keys.

The section models (schema.py, optimize.py) and the parsing side (io.py) all need
these, so they live below all three and import nothing of theirs.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

__all__ = ["Section", "FIELD_MESSAGES", "flatten"]


class Section(BaseModel):
    """A closed, frozen table of the spec whose numbers are numbers.

    pydantic's lax mode would read ``true`` as 1 and ``"23"`` as 23; a spec file or a
    ``--set`` that says so is a mistake, so a number field refuses booleans and strings
    (one line, exit 2) while still taking an integer where a float is expected.
    """

    # field docstrings become descriptions in the JSON Schema (grokexp schema, the docs)
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is not None:
            _check_number(value, _leaf_types(field.annotation))
        return value


def _leaf_types(annotation: Any) -> set[Any]:
    """The plain types a field accepts at its top level (unions, Optional and Annotated
    opened; a Literal's values kept as values; list/tuple element types under ``"items"``)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        args = typing.get_args(annotation)
        parts = args[:1] if origin is typing.Annotated else args
        return set().union(*(_leaf_types(a) for a in parts))
    if origin is Literal:
        return {("literal", v) for v in typing.get_args(annotation)}
    if origin in (list, tuple):
        return {("items", frozenset().union(*(_leaf_types(a) for a in typing.get_args(
            annotation) if a is not Ellipsis)))}
    return {annotation}


def _check_number(value: Any, accepted: set[Any], within: bool = False) -> None:
    """Raise when ``value`` is a bool or a string where only numbers (or lists of them) fit."""
    if isinstance(value, (list, tuple)):
        for items in (a[1] for a in accepted if isinstance(a, tuple) and a[0] == "items"):
            for item in value:
                _check_number(item, set(items), within=True)
        return
    if not isinstance(value, (bool, str)):
        return
    literals = {a[1] for a in accepted if isinstance(a, tuple) and a[0] == "literal"}
    if value in literals or type(value) in accepted or Any in accepted:
        return
    if int in accepted or float in accepted:
        kind = "a number" if float in accepted else "an integer"
        if within:  # the list itself is not shown after the message: show the item
            shown = json.dumps(value)
            raise ValueError(f"each value must be {kind} (got {shown})")
        raise ValueError(f"must be {kind}")


# pydantic error types → the message a user reads after ``path:``.
FIELD_MESSAGES = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "extra_forbidden": "unknown key",
    "missing": "required",
    "int_parsing": "must be an integer",
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "model_type": "must be a table",
    "dict_type": "must be a table",
    "list_type": "must be a list",
}


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables → ``{"a.b.c": value}``; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out
