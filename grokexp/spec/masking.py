"""Secrets in text: the rule that masks a URL's password, wherever the text goes.

It lives with the spec, the first stage, because the spec needs it first: the spec's hash is
taken over the masked spec (:func:`~.io.spec_hash`), so that the hash of a spec that holds a
password cannot be used to test guesses of it. ``tracking/redact.py`` applies the same rule to
everything that leaves grokexp (params, tags, artifacts, messages).

A password may hold ``/``, quotes, spaces or ``@`` (SQLAlchemy and PostgreSQL accept them).
Two rules follow, one per kind of text:

- a string that *is* one URL (a spec value, a ``--tracking-uri``, a ``--storage``): its
  password runs from the ``:`` after the user name to the string's last ``@``, spaces
  included (:func:`mask_url`);
- free text (messages, TOML already written): the password is the non-space run after the
  ``:`` up to its last ``@``; only when that run holds no ``@`` and is no port (``:5000,``,
  ``:8443/docs``) does it run on to the line's last ``@``, spaces included. So a URL with a
  port and an e-mail address later on the same line (``http://host:5000, mail
  alice@lab.org``) stay as they are, and ``http://alice:pa ss@host`` is masked
  (:func:`mask_secrets`).

Spec values are masked one by one (:func:`mask_values`) before they are written as TOML, so a
multi-line description never joins a URL and an address on different lines.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MASK", "mask_secrets", "mask_url", "mask_values", "learn_secret"]

MASK = "***"

_HEAD = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@'\"]*:")
_PORT = re.compile(r"\d+(?:[^\w@]|$)")
# one URL: the password up to the string's last '@', spaces included
_URL = re.compile(r"\s*" + _HEAD.pattern + r"(?P<secret>.*)(?P<at>@)", re.DOTALL)
_QUERY_SECRET = re.compile(r"(?P<head>[?&;](?:password|passwd|pwd|token|secret|api_?key|"
                           r"access_?key|sslpassword)=)(?P<secret>[^&\s'\"#]*)",
                           re.IGNORECASE)


# passwords of the URLs this process was given (the CLI hands them over): a driver's message
# may quote a piece of one in a form no URL rule can see ("failed to resolve host 'ss@h'")
_KNOWN: set[str] = set()


def learn_secret(url: str) -> None:
    """Remember the password of ``url`` (and its pieces between ``@``), so that every later
    :func:`mask_secrets` masks them wherever they appear."""
    match = _URL.match(url)
    if match is None or not match["secret"]:
        return
    secret = match["secret"]
    _KNOWN.update(piece for piece in [secret, *secret.split("@")] if len(piece) >= 3)


def mask_secrets(text: str) -> str:
    """``text`` with every ``scheme://user:password@`` password and every secret query value
    (``password=``, ``token=``, ``secret=``, ``api_key=``...) replaced by :data:`MASK`."""
    out, at = [], 0
    for head in _HEAD.finditer(text):
        start = head.end()
        if start < at:  # inside a stretch already masked
            continue
        line_end = text.find("\n", start)
        line = text[start:] if line_end < 0 else text[start:line_end]
        run = re.match(r"\S*", line)[0]  # type: ignore[index]
        if "@" in run:
            end = start + run.rindex("@")
        elif "@" in line and not _PORT.match(line):
            end = start + line.rindex("@")
        else:
            continue
        if end > start:
            out += [text[at:start], MASK]
            at = end
    text = "".join(out) + text[at:]
    for known in sorted(_KNOWN, key=len, reverse=True):
        text = text.replace(known, MASK)
    return _QUERY_SECRET.sub(lambda m: m["head"] + MASK if m["secret"] else m[0], text)


def mask_url(value: str) -> str:
    """A string that is one URL with its password masked, whatever characters it holds; any
    other string as :func:`mask_secrets` masks it."""
    match = _URL.match(value)
    if match is None or "\n" in value.strip():
        return mask_secrets(value)
    masked = value[:match.start("secret")] + (MASK if match["secret"] else match["secret"])
    return mask_secrets(masked + value[match.end("secret"):])


def mask_values(data: Any) -> Any:
    """A copy of plain data (dicts, lists, scalars) with every string masked (a string that is
    one URL by :func:`mask_url`, any other by :func:`mask_secrets`)."""
    if isinstance(data, str):
        return mask_url(data)
    if isinstance(data, dict):
        return {key: mask_values(value) for key, value in data.items()}
    if isinstance(data, list):
        return [mask_values(value) for value in data]
    return data
