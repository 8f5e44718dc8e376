"""CLI: the commands, the only door in from the shell (files, environment, terminal).

Imports: every stage before it; nothing imports it but grokexp/__main__.py and the entry point.
"""

from .commands import main

__all__ = ["main"]
