"""The ``[task]`` section: which table of pairs the networks learn.

The arithmetic tasks take their operands and labels from the residues mod P; ``s5`` takes
them from the 120 permutations of five elements, so it has no modulus.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from .base import Section

__all__ = ["TaskSpec", "OPERATIONS", "S5_ELEMENTS", "DEFAULT_MODULUS", "leave_modulus"]

OPERATIONS = ("add", "sub", "mul", "div", "x**2+y**2", "x**2+x*y+y**2", "x**3+x*y", "s5")
S5_ELEMENTS = 120  # 5!: the permutations of (0, 1, 2, 3, 4)
DEFAULT_MODULUS = 53


class TaskSpec(Section):
    """The algorithmic data set: every pair (i, j) of tokens, labelled i ∘ j.

    For the arithmetic operations the tokens are the residues mod P; for ``s5`` they are
    the 120 permutations of five elements and ∘ is their composition.
    """

    modulus: int | None = Field(None, ge=2, le=4096)
    """P: the operands and the label are residues mod P (default 53); leave it out for
    's5', whose 120 elements are fixed."""
    operation: Literal["add", "sub", "mul", "div", "x**2+y**2", "x**2+x*y+y**2", "x**3+x*y",
                       "s5"] = "add"
    """The operation: i + j, i − j, i · j, i · j⁻¹ ('div' needs a prime P), i² + j²,
    i² + ij + j² or i³ + ij mod P; or 's5', the composition a∘b of permutations of five
    elements, (a∘b)(x) = a[b[x]] (not commutative)."""
    train_fraction: float = Field(0.5, gt=0.0, lt=1.0)
    """Share of all pairs (P², P(P − 1) for 'div', 14,400 for 's5') used for training; the
    rest is the test set."""

    @model_validator(mode="before")
    @classmethod
    def _default_modulus(cls, raw: Any) -> Any:
        """An arithmetic task left without a modulus gets 53, as before 's5' existed (so
        older specs, their dumps and their hashes stay as they were); 's5' stays without."""
        if (isinstance(raw, Mapping) and raw.get("operation") != "s5"
                and raw.get("modulus") is None):
            return {**raw, "modulus": DEFAULT_MODULUS}
        return raw

    @property
    def tokens(self) -> int:
        """The number of tokens, which is also the number of classes: 120 for 's5', else P."""
        return S5_ELEMENTS if self.modulus is None else self.modulus

    @property
    def residues(self) -> bool:
        """Whether the tokens are the residues mod P in order (the cyclic group Z_P): the
        Fourier and codiagonal diagnostics assume it; 's5' is not cyclic."""
        return self.operation != "s5"

    def problems(self) -> list[tuple[str, str]]:
        """(path, message) for the rules across the task's keys."""
        if self.operation == "s5" and self.modulus is not None:
            return [("task.modulus", f"leave it out for 's5': s5 has {S5_ELEMENTS} elements, "
                                     f"the permutations of five (got {self.modulus})")]
        if self.operation == "div" and not _is_prime(self.tokens):
            return [("task.modulus", f"must be prime for 'div' (got {self.modulus})")]
        return []


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


def leave_modulus(raw: dict[str, Any], changed: Mapping[str, Any]) -> None:
    """A spec dumped with its P (``raw``) and moved to 's5' by ``changed`` (a sweep point or
    a study's parameters) drops that P, in place: s5 has none, and P was the base's, not
    asked for. A P that ``changed`` sets itself stays, and validation then names it."""
    if changed.get("task.operation") == "s5" and "task.modulus" not in changed:
        task = raw.get("task")
        if isinstance(task, dict):
            task.pop("modulus", None)
