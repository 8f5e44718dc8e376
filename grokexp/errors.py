"""The one exception family grokexp raises on purpose; the CLI turns it into a clean exit."""

from __future__ import annotations

__all__ = ["GrokexpError", "SpecError"]


class GrokexpError(Exception):
    """A problem the user can fix (bad input, unreachable store); never a bug in grokexp.

    ``exit_code`` follows click's convention: 2 for bad usage or input, 1 for other failures.
    """

    exit_code = 1


class SpecError(GrokexpError):
    """A spec that cannot be read or validated; carries one line per problem.

    Each line reads ``<source>: <dotted.path>: <message>`` so that the user can find the field.
    """

    exit_code = 2

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))
