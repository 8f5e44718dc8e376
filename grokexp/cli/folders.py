"""Folders named on the command line (``--out``, ``--recovery-dir``), checked before any work.

A folder that cannot take files is found out in the first second, in one line (exit 2), not
after an hour of training; nothing is created by the check, and nothing falls back to
another place in silence.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import SpecError

__all__ = ["usable_folder"]


def usable_folder(value: str, option: str) -> Path:
    """``value`` as a path, once the folder (or, if it does not exist yet, its nearest
    existing parent, where it will be made) is a directory this process can write in: a
    probe file is made there and removed at once. Otherwise a :class:`SpecError`."""
    path = Path(value)
    existing = path
    while not (existing.exists() or existing.is_symlink()) and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        what = "a dangling link" if existing.is_symlink() else "not a directory"
        raise SpecError([f"{option} {value}: {existing} is {what}"])
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".grokexp-probe-"):
            pass
    except OSError as err:
        raise SpecError([f"{option} {value}: cannot write in {existing} "
                         f"({err.strerror or err})"]) from None
    return path
