"""Secrets in text: the rule that masks a URL's password, wherever the text goes.

It lives with the spec, the first stage, because the spec needs it first: the spec's hash is
taken over the masked spec (:func:`~.io.spec_hash`), so that the hash of a spec that holds a
password cannot be used to test guesses of it. ``tracking/redact.py`` applies the same rule to
everything that leaves grokexp (params, tags, artifacts, messages).

A URL's password runs from the ``:`` after its user name to the *last* ``@`` on its line: a
password may hold ``/``, quotes, spaces or ``@`` (SQLAlchemy and PostgreSQL accept them), so no
other character can end it. Masking too much (the rest of a line that holds an ``@`` after a
``scheme://name:``) is the safe side of that rule.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MASK", "mask_secrets", "mask_values"]

MASK = "***"

# scheme://user:password@host: the password is everything up to the line's last '@'
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@'\"]*:)"
                       r"(?P<secret>[^\r\n]*)(?P<at>@)")
_QUERY_SECRET = re.compile(r"(?P<head>[?&;](?:password|passwd|pwd|token|secret|api_?key|"
                           r"access_?key|sslpassword)=)(?P<secret>[^&\s'\"#]*)",
                           re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """``text`` with every ``scheme://user:password@`` password and every secret query value
    (``password=``, ``token=``, ``secret=``, ``api_key=``...) replaced by :data:`MASK`."""
    text = _USERINFO.sub(lambda m: m["head"] + MASK + m["at"] if m["secret"] else m[0], text)
    return _QUERY_SECRET.sub(lambda m: m["head"] + MASK if m["secret"] else m[0], text)


def mask_values(data: Any) -> Any:
    """A copy of plain data (dicts, lists, scalars) with every string masked."""
    if isinstance(data, str):
        return mask_secrets(data)
    if isinstance(data, dict):
        return {key: mask_values(value) for key, value in data.items()}
    if isinstance(data, list):
        return [mask_values(value) for value in data]
    return data
