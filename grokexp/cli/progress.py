"""A progress line for long runs: rewritten in place on a terminal, plain lines otherwise."""

from __future__ import annotations

import time
from typing import TextIO

from ..engine.train import EvalContext, Hook

__all__ = ["ProgressHook"]


class ProgressHook(Hook):
    """Shows epoch, members still training and their mean train/test accuracy."""

    def __init__(self, stream: TextIO, is_tty: bool, total_members: int,
                 plain_every_s: float = 10.0):
        self.stream, self.is_tty = stream, is_tty
        self.total_members = total_members
        self.plain_every_s = plain_every_s
        self._last = 0.0
        self._started = time.monotonic()

    def on_evaluation(self, ctx: EvalContext, values: dict[str, list[float]]) -> None:
        epochs = ctx.members[0].spec.train.epochs
        train, test = values["train_acc"], values["test_acc"]
        elapsed = time.monotonic() - self._started
        line = (f"epoch {ctx.epoch:>6}/{epochs} | members {len(ctx.members)}"
                f"/{self.total_members} | train_acc {sum(train) / len(train):.3f} | "
                f"test_acc {sum(test) / len(test):.3f} | {elapsed:6.0f}s")
        if self.is_tty:
            done = ctx.epoch / epochs
            bar = "#" * int(20 * done) + "-" * (20 - int(20 * done))
            self.stream.write(f"\r[{bar}] {line}")
            if ctx.epoch == epochs:
                self.stream.write("\n")
            self.stream.flush()
        elif ctx.epoch in (0, epochs) or time.monotonic() - self._last >= self.plain_every_s:
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last = time.monotonic()
