"""The hook that follows a batch's trials as they train: curves to MLflow, progress to the
pruner (Optuna's, or the forecast's), and each trial told as soon as its last seed is done.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..diagnostics.metrics.embedding import codiagonal_structure, cosine_matrix
from ..engine.sweep import Member
from ..engine.train import EvalContext, Hook, MemberSeries
from ..forecast.predict import (
    FIT_WINDOW,
    PRIOR_LEVEL,
    PRIOR_RISE_TO_GROK,
    PRUNE_INDICATOR,
    PRUNE_PATIENCE,
    extrapolate,
    level_at,
    trial_forecast,
)
from ..grokking import rise_epoch
from ..spec.optimize import OptimizeSpec
from ..tracking.logged_model import SEED_WEIGHTS
from ..tracking.tracker import Tracker
from .objective import trial_outcome
from .storage import Heartbeat

if TYPE_CHECKING:
    import optuna

__all__ = ["TrialRun", "StudyHook"]


@dataclass
class TrialRun:
    """A trial in flight: its members, its MLflow run, what its seeds became."""

    trial: optuna.Trial
    params: dict[str, Any]
    run_id: str
    members: list[Member]
    histories: dict[int, MemberSeries] = field(default_factory=dict)
    last_test_acc: dict[int, float] = field(default_factory=dict)
    outcome: str = ""
    # the forecast pruner: consecutive evaluations at which its rule fired, from which epoch
    strikes: int = 0
    struck_at: int = -1


class StudyHook(Hook):
    """Per evaluation: trial curves to MLflow, progress to the pruner; tell when done."""

    def __init__(self, study: optuna.Study, opt: OptimizeSpec, runs: Sequence[TrialRun],
                 tracker: Tracker, heartbeat: Heartbeat, epochs: int,
                 on_told: Callable[[TrialRun], None],
                 on_write: Callable[[], None] = lambda: None):
        self.study, self.opt, self.tracker = study, opt, tracker
        self.heartbeat, self.epochs, self.on_told = heartbeat, epochs, on_told
        self.on_write = on_write  # after each round of tracking writes (the store's health)
        self.by_member = {m.index: run for run in runs for m in run.members}
        self._calibrated_at = -1
        self._calibration_values: tuple[float, float, float | None] = (
            PRIOR_LEVEL, PRIOR_RISE_TO_GROK, None)

    def on_evaluation(self, ctx: EvalContext, values: dict[str, list[float]]) -> None:
        positions: dict[int, list[int]] = {}
        for pos, member in enumerate(ctx.members):
            positions.setdefault(id(self.by_member[member.index]), []).append(pos)
        for pos_list in positions.values():
            run = self.by_member[ctx.members[pos_list[0]].index]
            row = {name: statistics.median(vals[p] for p in pos_list)
                   for name, vals in values.items()}
            for p in pos_list:
                member = ctx.members[p]
                run.last_test_acc[member.index] = values["test_acc"][p]
                row[f"seed{member.spec.train.seed}.test_acc"] = values["test_acc"][p]
            self.tracker.log_metrics(run.run_id, ctx.epoch, row)
            self.on_write()
            if self.opt.pruner == "none" or ctx.epoch == 0:
                continue
            progress = 1.0 - statistics.median(run.last_test_acc.values())
            run.trial.report(progress, ctx.epoch)
            if self.opt.pruner == "forecast":
                reason = self._forecast_reason(ctx, run, pos_list)
            else:
                reason = (f"pruned by the {self.opt.pruner} pruner"
                          if run.trial.should_prune() else None)
            if reason is not None:
                for p in pos_list:
                    ctx.request_stop(ctx.members[p].index, "PRUNED", reason)

    def metrics(self, ctx: EvalContext) -> dict[str, torch.Tensor]:
        """The forecast pruner's indicator for every member, (K,); nothing otherwise."""
        if self.opt.pruner != "forecast":
            return {}
        with torch.no_grad():
            seen = ctx.population.arch.token_embedding(ctx.population.params)  # (K, P, d)
            if seen is None or not ctx.data.table.residues:  # no token embedding, or s5's
                return {}  # tokens, not Z_P's: no indicator, nothing pruned
            return {PRUNE_INDICATOR: codiagonal_structure(cosine_matrix(seen))}

    def _calibration(self, epoch: int) -> tuple[float, float, float | None]:
        """The indicator's level at the test rise and the rise-to-grok gap (medians over
        completed trials, else the priors) and the best objective so far (uncensored
        trials), read once per epoch."""
        if self._calibrated_at != epoch:
            from optuna.trial import TrialState

            done = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))

            def attrs(key: str) -> list[float]:
                return [t.user_attrs[key] for t in done
                        if isinstance(t.user_attrs.get(key), (int, float))]

            levels, gaps = attrs("forecast_level"), attrs("forecast_rise_to_grok")
            values = [t.value for t in done
                      if t.value is not None and t.user_attrs.get("censored") is False]
            self._calibration_values = (
                float(statistics.median(levels)) if levels else PRIOR_LEVEL,
                float(statistics.median(gaps)) if gaps else PRIOR_RISE_TO_GROK,
                min(values) if values else None)
            self._calibrated_at = epoch
        return self._calibration_values

    def _seed_forecast(self, h: MemberSeries, epoch: int, level: float, gap: float) -> float:
        """One seed's forecast test grok epoch: measured once it has one; else its rise
        (measured, or the indicator extrapolated to ``level``) plus the gap."""
        if h.test_grok_epoch is not None:
            return float(h.test_grok_epoch)
        rose = rise_epoch(h.epochs, h.metrics["test_acc"]) if h.epochs else None
        rise = (float(rose) if rose is not None
                else extrapolate(h.epochs, h.metrics[PRUNE_INDICATOR], epoch, level))
        return max(float(epoch), rise + gap)

    def _forecast_reason(self, ctx: EvalContext, run: TrialRun,
                         pos_list: list[int]) -> str | None:
        """Stop the trial when its forecast test grok epoch (upper median over its seeds) is
        beyond the budget, or its forecast objective clearly worse than the best trial's, at
        ``PRUNE_PATIENCE`` consecutive evaluations; the forecast goes on the trial as user
        attrs (never as its objective)."""
        histories = [ctx.histories[p] for p in pos_list]  # the seeds still training
        if ctx.epoch < self.opt.prune_warmup or len(histories[0].epochs) < FIT_WINDOW:
            return None
        level, gap, best = self._calibration(ctx.epoch)
        seeds = [*histories, *run.histories.values()]  # with the seeds that left
        grok = [self._seed_forecast(h, ctx.epoch, level, gap) for h in histories]
        grok += [float(h.test_grok_epoch) if h.test_grok_epoch is not None else math.inf
                 for h in run.histories.values()]
        memorised = [None if h.train_grok_epoch is None else float(h.train_grok_epoch)
                     for h in seeds]
        forecast, value, reason = trial_forecast(
            grok, memorised, self.epochs, best, self.opt.objective == "grokking_delay")
        if reason is None:
            run.strikes = 0
            return None
        if run.strikes == 0:
            run.struck_at = ctx.epoch
        run.strikes += 1
        if run.strikes < PRUNE_PATIENCE:
            return None
        run.trial.set_user_attr("forecast_test_grok_epoch",
                                forecast if math.isfinite(forecast) else "never")
        if value is not None and self.opt.objective == "grokking_delay":
            run.trial.set_user_attr("forecast_objective",
                                    value if math.isfinite(value) else "never")
        run.trial.set_user_attr("forecast_target_level", level)
        run.trial.set_user_attr("forecast_rise_to_grok_used", gap)
        run.trial.set_user_attr("forecast_epoch", ctx.epoch)
        run.trial.set_user_attr("forecast_first_epoch", run.struck_at)
        return f"pruned by the forecast: {reason} ({run.strikes} evaluations in a row)"

    def on_member_end(self, member: Member, history: MemberSeries,
                      state: dict[str, torch.Tensor]) -> None:
        run = self.by_member[member.index]
        run.histories[member.index] = history
        if member.spec.tracking.log_model:  # the study's end logs the best trial's networks
            self.tracker.log_state(run.run_id, state,
                                   SEED_WEIGHTS.format(seed=member.spec.train.seed))
        if len(run.histories) == len(run.members):
            self._tell(run)

    def _record_level(self, run: TrialRun, histories: list[MemberSeries]) -> None:
        """A completed trial's level of the indicator at the test rise and its gap from the
        rise to the test grok epoch (medians over the seeds that generalised): what later
        forecasts aim for."""
        reached = [r for r in map(_level_reached, histories) if r is not None]
        if reached:
            run.trial.set_user_attr("forecast_level",
                                    float(statistics.median(r[0] for r in reached)))
            run.trial.set_user_attr("forecast_rise_to_grok",
                                    float(statistics.median(r[1] for r in reached)))

    def _tell(self, run: TrialRun) -> None:
        import optuna
        from optuna.trial import TrialState

        histories = [run.histories[m.index] for m in run.members]
        tags = {"optuna.trial": str(run.trial.number)}
        try:
            if any(h.status == "PRUNED" for h in histories):
                self.study.tell(run.trial, state=TrialState.PRUNED)
                run.outcome, status = "PRUNED", "KILLED"
            else:
                outcome = trial_outcome(histories, self.opt.objective, self.epochs,
                                        self.opt.censor_penalty)
                for key, value in outcome.user_attrs().items():
                    run.trial.set_user_attr(key, value)
                if self.opt.pruner == "forecast":
                    self._record_level(run, histories)
                self.study.tell(run.trial, outcome.value)
                run.outcome, status = "COMPLETE", "FINISHED"
                metrics = {"objective": outcome.value,
                           "censored_seeds": float(outcome.censored_seeds)}
                if outcome.spread is not None:
                    metrics["spread"] = outcome.spread
                for m, score in zip(run.members, outcome.seed_scores, strict=True):
                    if score is not None:
                        metrics[f"seed{m.spec.train.seed}.{self.opt.objective}"] = score
                self.tracker.log_metrics(run.run_id, max(h.last_epoch for h in histories),
                                         metrics)
                tags["censored"] = str(outcome.censored).lower()
        except optuna.exceptions.UpdateFinishedTrialError:
            run.outcome, status = "FAIL", "KILLED"  # failed as stale by another worker
            tags["grokexp.note"] = "failed as stale by another worker before it was told"
        tags["optuna.state"] = run.outcome
        self.heartbeat.remove(run.trial.number)
        self.tracker.set_tags(run.run_id, tags)
        self.tracker.end_run(run.run_id, status)
        self.on_write()
        self.on_told(run)


def _level_reached(history: MemberSeries) -> tuple[float, float] | None:
    """The pruner's indicator at the member's test rise and the epochs from that rise to its
    test grok epoch, or None if it did not reach the threshold."""
    values, acc = history.metrics.get(PRUNE_INDICATOR), history.metrics.get("test_acc")
    if values is None or acc is None or history.test_grok_epoch is None:
        return None
    rise = rise_epoch(history.epochs, acc)
    if rise is None:
        return None
    level = level_at(history.epochs, values, rise)
    return (level, float(history.test_grok_epoch - rise)) if math.isfinite(level) else None
