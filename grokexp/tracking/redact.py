"""Masking secrets before they reach MLflow params/tags, logs or the terminal.

A storage URL such as ``postgresql://user:secret@db:5432/optuna`` keeps its shape but loses
its password: ``postgresql://user:***@db:5432/optuna``. Use :func:`redact_uri` on one URL,
:func:`redact_text` on free text (error messages) that may hold URLs, and
:func:`redact_params` on a flat param mapping. The rule itself (spec/masking.py) sits with the
spec, whose hash is taken over the masked spec. Query parameters named like secrets
(``password=``, ``token=``, ``secret=``, ``key=``) are masked too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..spec.masking import MASK, mask_secrets, mask_url, mask_values

__all__ = ["MASK", "redact_uri", "redact_text", "redact_params", "one_line"]


def redact_text(text: str) -> str:
    """Every ``scheme://user:password@`` and secret query value in ``text`` masked, by the
    free-text rule of :func:`~grokexp.spec.masking.mask_secrets`."""
    return mask_secrets(text)


def redact_uri(uri: str) -> str:
    """One storage or tracking URL with its password (if any) masked."""
    return mask_url(uri)


def redact_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """A flat param mapping with every string masked, inside lists and tables too (a sweep's
    value lists, a search space's choices)."""
    return {k: mask_values(v) for k, v in params.items()}


def one_line(err: BaseException) -> str:
    """An exception as one line without secrets: its message's first line, else its type."""
    text = str(err).strip().splitlines()
    return redact_text(text[0] if text else type(err).__name__)
