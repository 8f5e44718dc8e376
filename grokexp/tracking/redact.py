"""Masking secrets before they reach MLflow params/tags, logs or the terminal.

A storage URL such as ``postgresql://user:secret@db:5432/optuna`` keeps its shape but loses
its password: ``postgresql://user:***@db:5432/optuna``. Use :func:`redact_uri` on one URL,
:func:`redact_text` on free text (error messages, TOML) that may hold URLs, and
:func:`redact_params` on a flat param mapping. Query parameters named like secrets
(``password=``, ``token=``, ``secret=``, ``key=``) are masked too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MASK", "redact_uri", "redact_text", "redact_params"]

MASK = "***"

# scheme://user:password@host  (password up to the last '@' before the host part)
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@'\"]*:)"
                       r"(?P<secret>[^\s/'\"]*)(?P<at>@)")
_QUERY_SECRET = re.compile(r"(?P<head>[?&;](?:password|passwd|pwd|token|secret|api_?key|"
                           r"access_?key|sslpassword)=)(?P<secret>[^&\s'\"#]*)",
                           re.IGNORECASE)


def redact_text(text: str) -> str:
    """Every ``scheme://user:password@`` and secret query value in ``text`` masked."""
    text = _USERINFO.sub(lambda m: m["head"] + MASK + m["at"] if m["secret"] else m[0], text)
    return _QUERY_SECRET.sub(lambda m: m["head"] + MASK if m["secret"] else m[0], text)


def redact_uri(uri: str) -> str:
    """One storage or tracking URL with its password (if any) masked."""
    return redact_text(uri)


def redact_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """A flat param mapping with every string value passed through :func:`redact_text`."""
    return {k: redact_text(v) if isinstance(v, str) else v for k, v in params.items()}
