"""The runner's hooks: what reaches the tracker from the training loop.

:class:`TrackingHook` is a run's one door from a measured metric to the tracker (``log``): every
evaluation's metrics, the diagnostics' probe values (``DiagnosticsHook(report=...)``) and each
member's summary go through it; when a member leaves it also tags and ends the member's run
and logs its weights, accuracy figure and network (a LoggedModel, logged in the background:
``tracking/logged_model.py``; ``finish`` waits for them). :class:`CheckpointHook` saves each
member's weights at log-spaced epochs and at the diagnostics' chosen epochs, so that
``grokexp figures`` can measure them again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from ..diagnostics.schedule import EvaluationClock, checkpoint_targets, due
from ..engine.arch import Architecture
from ..engine.sweep import Member
from ..engine.train import EvalContext, Hook, MemberSeries
from ..figures.run import ACCURACY_COLUMNS, accuracy_figures
from ..tracking.figure_log import FigureLog
from ..tracking.logged_model import ModelLog
from ..tracking.tracker import Tracker

__all__ = ["TrackingHook", "CheckpointHook", "summary_metrics", "MLFLOW_STATUS"]

MLFLOW_STATUS = {"FINISHED": "FINISHED", "FAILED": "FAILED", "PRUNED": "KILLED",
                 "KILLED": "KILLED"}
EXAMPLE_PAIRS = 8  # the logged model's input example: more than one, so its batch axis is free


def summary_metrics(history: MemberSeries) -> dict[str, float]:
    """Grok epochs and delay, only those that were reached: no fake numbers."""
    out: dict[str, float] = {}
    for name in ("train_grok_epoch", "test_grok_epoch", "grokking_delay"):
        value = getattr(history, name)
        if value is not None:
            out[name] = float(value)
    return out


class TrackingHook(Hook):
    """Logs each evaluation, the values handed to :meth:`log`, and each finished member
    (summary, tags, weights, accuracy figure, network, the run's end); :meth:`finish`
    waits for the networks."""

    def __init__(self, tracker: Tracker, run_ids: dict[int, str],
                 on_finished: Callable[[Member, MemberSeries], None] | None,
                 figure_log: FigureLog):
        """``figure_log`` draws the accuracy figure off the training thread."""
        self.tracker, self.run_ids, self.on_finished = tracker, run_ids, on_finished
        self.figure_log = figure_log
        self.models = ModelLog(tracker)
        self._arch: Architecture | None = None  # the population's, seen at each evaluation
        self._example: torch.Tensor | None = None

    def log(self, member_index: int, epoch: int, values: Mapping[str, float]) -> None:
        """Measured values of one member at one epoch, to its run."""
        self.tracker.log_metrics(self.run_ids[member_index], epoch, values)

    def on_evaluation(self, ctx: EvalContext, values: dict[str, list[float]]) -> None:
        for pos, member in enumerate(ctx.members):
            self.log(member.index, ctx.epoch, {name: vals[pos] for name, vals in values.items()})
        self._arch = ctx.population.arch
        self._example = ctx.data.table.pairs[:EXAMPLE_PAIRS].cpu()

    def on_member_end(self, member: Member, history: MemberSeries,
                      state: dict[str, torch.Tensor]) -> None:
        run_id = self.run_ids[member.index]
        self.log(member.index, history.last_epoch, summary_metrics(history))
        tags = {"grokked": str(history.test_grok_epoch is not None).lower(),
                "grokexp.status": history.status}
        if history.reason:
            tags["grokexp.reason"] = history.reason
        self.tracker.log_state(run_id, state, "weights/final.pt")
        if member.spec.tracking.log_model and self._arch is not None:
            assert self._example is not None
            arch = self._arch  # the twin is built on the logging thread
            self.models.submit(run_id, lambda: arch.twin(state), self._example,
                               history.last_epoch, kind=arch)
        if member.spec.metrics.figures:
            self.figure_log.submit(run_id, accuracy_figures, history.only(*ACCURACY_COLUMNS),
                                   member.spec.metrics.grok_threshold, member.label)
        self.tracker.end_run(run_id, MLFLOW_STATUS.get(history.status, "FINISHED"), tags)
        if self.on_finished is not None:
            self.on_finished(member, history)

    def finish(self) -> None:
        """Every member's network logged (or, where the store failed, a warning)."""
        self.models.finish()


class CheckpointHook(Hook):
    """Each member's weights as ``checkpoints/epoch_NNNNNN.pt`` in its run: at 0 and
    ``metrics.checkpoints - 1`` log-spaced epochs, and at every epoch chosen for the DRC, the
    heatmaps or the histograms (at the first evaluation at or after each)."""

    def __init__(self, tracker: Tracker, run_ids: Mapping[int, str]):
        self.tracker, self.run_ids = tracker, run_ids
        self._clock = EvaluationClock()

    def on_evaluation(self, ctx: EvalContext, values: dict[str, list[float]]) -> None:
        cfg = ctx.members[0].spec.metrics  # equal across a population (sweep.shape_key)
        previous = self._clock.tick(ctx.epoch, cfg.every)
        if cfg.checkpoints == 0:
            return
        targets = checkpoint_targets(ctx.members[0].spec.train.epochs, cfg.every,
                                     cfg.checkpoints)
        chosen = [*cfg.drc_epochs, *cfg.heatmap_epochs, *cfg.histogram_epochs]
        if not due(targets, previous, ctx.epoch) and not due(chosen, previous, ctx.epoch):
            return
        for pos, member in enumerate(ctx.members):
            if member.index in self.run_ids:
                self.tracker.log_state(self.run_ids[member.index],
                                       ctx.population.member_state(pos),
                                       f"checkpoints/epoch_{ctx.epoch:06d}.pt")
