"""The loop's own rules, as hooks that run before any other: when a member groks, and when it
must leave.

- :class:`GrokEpochs`: a member's train (test) grok epoch is the first evaluation at which its
  train (test) accuracy reaches ``metrics.grok_threshold`` (``grokexp.grokking.reached``).
- :class:`StopRules`: a member whose training loss is not finite leaves FAILED; one whose
  test accuracy reached the threshold ``train.stop_after_generalized`` epochs ago or more
  leaves FINISHED ("generalised"), unless something else asked first. Every member still
  there at ``train.epochs`` leaves FINISHED: that is the loop's budget, not a rule here.
"""

from __future__ import annotations

import math

from ..grokking import reached
from .hooks import EvalContext, Hook

__all__ = ["GrokEpochs", "StopRules", "RULES"]


class GrokEpochs(Hook):
    """Dates each member's train and test grok epochs in its series."""

    def on_evaluation(self, ctx: EvalContext, values: dict[str, list[float]]) -> None:
        for pos, (member, hist) in enumerate(zip(ctx.members, ctx.histories, strict=True)):
            threshold = member.spec.metrics.grok_threshold
            if hist.train_grok_epoch is None and reached(values["train_acc"][pos], threshold):
                hist.train_grok_epoch = ctx.epoch
            if hist.test_grok_epoch is None and reached(values["test_acc"][pos], threshold):
                hist.test_grok_epoch = ctx.epoch


class StopRules(Hook):
    """Asks the loop to retire the members that diverged or have held their generalisation."""

    def on_evaluation(self, ctx: EvalContext, values: dict[str, list[float]]) -> None:
        for pos, (member, hist) in enumerate(zip(ctx.members, ctx.histories, strict=True)):
            loss = values["train_loss"][pos]
            if not math.isfinite(loss):
                ctx.request_stop(member.index, "FAILED", f"train loss became {loss}")
            hold = member.spec.train.stop_after_generalized
            if (hold is not None and hist.test_grok_epoch is not None
                    and ctx.epoch - hist.test_grok_epoch >= hold):
                ctx.stop_requests.setdefault(member.index, ("FINISHED", "generalised"))


RULES = (GrokEpochs, StopRules)  # in this order, before the caller's hooks
