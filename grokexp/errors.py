"""The one exception family grokexp raises on purpose; the CLI turns it into a clean exit."""

from __future__ import annotations

__all__ = ["GrokexpError", "SpecError", "RunInterrupted"]


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


class RunInterrupted(GrokexpError):
    """Training stopped between epochs (a signal, or a tracking store that went away).

    A checkpoint was written; ``root_run_id`` is the run that ``grokexp run --resume`` takes.
    """

    def __init__(self, root_run_id: str, epoch: int):
        self.root_run_id, self.epoch = root_run_id, epoch
        super().__init__(f"stopped after epoch {epoch}; checkpoint on run {root_run_id}")
