"""The one exception family grokexp raises on purpose; the CLI turns it into a clean exit."""

from __future__ import annotations

import re

__all__ = ["GrokexpError", "SpecError", "NotFound", "RunInterrupted", "is_not_found"]


_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


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
        # user text (keys, values) may hold newlines or escapes: keep one problem per line
        self.problems = [_CONTROL.sub(lambda m: repr(m[0])[1:-1], p) for p in problems]
        super().__init__("\n".join(self.problems))


class NotFound(GrokexpError):
    """A run, experiment or folder named on the command line that does not exist.

    Bad input like a bad spec (exit 2): the store answered, it just holds no such thing.
    """

    exit_code = 2


def is_not_found(err: BaseException) -> bool:
    """Whether a store's exception says the thing asked for does not exist (MLflow's
    ``RESOURCE_DOES_NOT_EXIST``), as opposed to the store failing."""
    return getattr(err, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


class RunInterrupted(GrokexpError):
    """Training stopped between epochs (a signal, or a tracking store that went away).

    A checkpoint was written; ``root_run_id`` is the run that ``grokexp run --resume`` takes.
    """

    def __init__(self, root_run_id: str, epoch: int):
        self.root_run_id, self.epoch = root_run_id, epoch
        super().__init__(f"stopped after epoch {epoch}; checkpoint on run {root_run_id}")
