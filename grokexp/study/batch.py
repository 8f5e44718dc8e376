"""One batch of Optuna trials trained as one population: members, pruning, tell, child runs.

Each trial is a point of the search space trained with every seed of ``[optimize] seeds``;
all members of all trials in the batch go to ``runner.train_group`` together (one population
per shape). A hook reports each trial's progress to its pruner, logs the trial's curves to
its MLflow child run, and tells the trial as soon as its last seed leaves the population.

A tracking store that fails mid-batch does not stop it: the tracker journals what it could not
write (its recovery folder) and the trials are told all the same. A store that will not create
a trial's run gives the batch's points back to the study and raises :class:`StoreUnavailable`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..diagnostics.metrics.embedding import codiagonal_structure, cosine_matrix
from ..engine.model import embedded
from ..engine.sweep import Member, group_by_shape
from ..engine.train import EvalContext, Hook, MemberSeries
from ..errors import GrokexpError, SpecError
from ..forecast.onset import RISE, rise_epoch
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
from ..run.runner import SplitProvenance, resolve_device, train_group
from ..spec.base import flatten
from ..spec.io import set_dotted, spec_to_dict, validate_spec
from ..spec.optimize import OptimizeSpec, SearchDim
from ..spec.schema import Spec
from ..tracking.redact import redact_params
from ..tracking.tracker import Tracker
from .objective import trial_outcome
from .storage import Heartbeat

if TYPE_CHECKING:
    import optuna

__all__ = ["TrialRun", "point_spec", "trial_seeds", "suggest", "check_space", "run_batch",
           "StoreUnavailable"]


class StoreUnavailable(GrokexpError):
    """The tracking store would not create a trial's run; the batch's points are queued again
    and nothing was trained."""


def point_spec(base: Spec, params: dict[str, Any], source: str,
               seed: int | None = None) -> Spec:
    """The base spec at one point of the space (no ``[optimize]``, no ``[sweep]``)."""
    raw = spec_to_dict(base)
    raw.pop("optimize", None)
    raw.pop("sweep", None)
    for key, value in params.items():
        set_dotted(raw, key, value)
    if seed is not None:
        raw["train"]["seed"] = seed
    return validate_spec(raw, source)


def trial_seeds(spec: Spec) -> list[int]:
    """``seeds = n`` means train.seed, train.seed + 1, …; a list is taken as it is."""
    assert spec.optimize is not None
    seeds = spec.optimize.seeds
    return list(seeds) if isinstance(seeds, list) else [spec.train.seed + i
                                                        for i in range(seeds)]


def suggest(trial: optuna.Trial, key: str, dim: SearchDim) -> Any:
    if dim.choices is not None:
        return trial.suggest_categorical(key, dim.choices)
    assert dim.low is not None and dim.high is not None
    if dim.is_int:
        return trial.suggest_int(key, int(dim.low), int(dim.high), step=int(dim.step or 1),
                                 log=dim.log)
    return trial.suggest_float(key, float(dim.low), float(dim.high), step=dim.step, log=dim.log)


def check_space(spec: Spec, source: str) -> None:
    """Every bound and choice of the space must make a valid spec; else exit-2 lines."""
    assert spec.optimize is not None
    problems: list[str] = []
    for key, dim in spec.optimize.dims().items():
        values = dim.choices if dim.choices is not None else [dim.low, dim.high]
        for value in values:
            try:
                point_spec(spec, {key: value}, source)
            except SpecError as err:
                problems += [p.replace(f"{source}: ", f"{source}: optimize.space.{key}: "
                                       f"{value!r} gives ", 1) for p in err.problems]
    if problems:
        raise SpecError(list(dict.fromkeys(problems)))


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
            seen = embedded(ctx.population.params, ctx.population.arch)  # (K, P, d)
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
        rose = rise_epoch(h.epochs, h.metrics["test_acc"], RISE) if h.epochs else None
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
        self.heartbeat.remove(run.trial._trial_id)
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
    rise = rise_epoch(history.epochs, acc, RISE)
    if rise is None:
        return None
    level = level_at(history.epochs, values, rise)
    return (level, float(history.test_grok_epoch - rise)) if math.isfinite(level) else None


def run_batch(study: optuna.Study, trials: Sequence[tuple[optuna.Trial, dict[str, Any]]],
              spec: Spec, source: str, tracker: Tracker, parent_id: str | None,
              heartbeat: Heartbeat, hooks: Sequence[Hook] = (),
              on_told: Callable[[TrialRun], None] = lambda run: None,
              on_write: Callable[[], None] = lambda: None,
              worker: str | None = None) -> list[TrialRun]:
    """Train the trials × their seeds as one population; every trial is told at its end.

    ``worker`` (the id a worker prints first) goes on each trial as the user attr ``worker``
    and on its run as the tag ``grokexp.worker``.
    """
    assert spec.optimize is not None
    runs: list[TrialRun] = []
    members: list[Member] = []
    splits = SplitProvenance()
    try:  # an interrupt (SIGINT, SIGTERM) while the runs are made: give back every trial
        for index, (trial, params) in enumerate(trials):
            trial_members: list[Member] = []
            for seed in trial_seeds(spec):
                member_spec = point_spec(spec, params, source, seed)
                trial_members.append(Member(len(members) + len(trial_members), member_spec,
                                            {**params, "train.seed": seed}))
            point = point_spec(spec, params, source)
            run_params = {**flatten(spec_to_dict(point)), "optuna.trial": trial.number,
                          "seeds": trial_seeds(spec)}
            dataset = splits.of(point)  # the trial's seeds vary train.seed only: one split
            tags = {"grokexp.role": "trial", "grokexp.study": study.study_name,
                    "optuna.trial": str(trial.number), "optuna.state": "RUNNING",
                    **splits.tags(dataset)}
            if worker is not None:
                trial.set_user_attr("worker", worker)
                tags["grokexp.worker"] = worker
            try:
                run_id = tracker.start_run(f"trial-{trial.number}", redact_params(run_params), tags,
                                           parent_id)
            except GrokexpError as err:  # the store's one shape of failure; nothing trained yet
                _give_back(runs, study, tracker, heartbeat)
                _requeue(trials[index:], study, heartbeat)
                raise StoreUnavailable(str(err)) from None
            # held at once: an interrupt from here on ends this run with the others
            runs.append(TrialRun(trial, params, run_id, trial_members))
            splits.log(tracker, run_id, dataset)
            trial.set_user_attr("mlflow_run_id", run_id)
            members += trial_members
    except StoreUnavailable:
        raise
    except BaseException:
        _give_back(runs, study, tracker, heartbeat)
        _requeue(trials[len(runs):], study, heartbeat)
        raise
    hook = StudyHook(study, spec.optimize, runs, tracker, heartbeat, budget_epochs(spec),
                     on_told, on_write)
    try:
        for group in group_by_shape(members):
            train_group(group, resolve_device(group[0].spec.train.device), [hook, *hooks])
    except BaseException:
        _give_back([r for r in runs if not r.outcome], study, tracker, heartbeat)
        raise
    return runs


def budget_epochs(spec: Spec) -> int:
    """The most epochs any trial may train: the censor penalty is a multiple of it."""
    assert spec.optimize is not None
    dim = spec.optimize.dims().get("train.epochs")
    if dim is None:
        return spec.train.epochs
    bounds = dim.choices if dim.choices is not None else [dim.high]
    return max(int(b) for b in [spec.train.epochs, *bounds] if isinstance(b, (int, float)))


def _give_back(runs: Sequence[TrialRun], study: optuna.Study, tracker: Tracker,
               heartbeat: Heartbeat) -> None:
    """Interrupted: fail the untold trials and enqueue their points again for any worker."""
    from optuna.trial import TrialState

    for run in runs:
        heartbeat.remove(run.trial._trial_id)
        try:
            study.tell(run.trial, state=TrialState.FAIL)
            study.enqueue_trial(run.params, user_attrs={"retry_of": run.trial.number})
            tracker.set_tags(run.run_id, {"optuna.state": "FAIL"})
            tracker.end_run(run.run_id, "KILLED")
        except Exception:  # best effort on the way out; stale detection is the fallback
            pass


def _requeue(trials: Sequence[tuple[optuna.Trial, dict[str, Any]]], study: optuna.Study,
             heartbeat: Heartbeat) -> None:
    """Asked trials that never got a run: failed (user attr ``store_unavailable``) and their
    points enqueued again."""
    from optuna.trial import TrialState

    for trial, params in trials:
        heartbeat.remove(trial._trial_id)
        try:
            trial.set_user_attr("store_unavailable", True)
            study.tell(trial, state=TrialState.FAIL)
            study.enqueue_trial(params, user_attrs={"retry_of": trial.number})
        except Exception:  # best effort, as in _give_back: stale detection is the fallback
            pass
