"""One batch of Optuna trials trained as one population: members, child runs, giving back.

Each trial is a point of the search space trained with every seed of ``[optimize] seeds``;
all members of all trials in the batch go to ``runner.train_group`` together (one population
per shape). A hook (hook.py) reports each trial's progress to its pruner, logs the trial's
curves to its MLflow child run, and tells the trial as soon as its last seed leaves the
population.

A tracking store that fails mid-batch does not stop it: the tracker journals what it could not
write (its recovery folder) and the trials are told all the same. A store that will not create
a trial's run gives the batch's points back to the study and raises :class:`StoreUnavailable`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..engine.sweep import Member, group_by_shape
from ..engine.train import Hook
from ..errors import GrokexpError
from ..run.runner import SplitProvenance, resolve_device, train_group
from ..spec.base import flatten
from ..spec.io import spec_to_dict
from ..spec.schema import Spec
from ..tracking.redact import redact_params
from ..tracking.tracker import Tracker
from .hook import StudyHook, TrialRun
from .space import budget_epochs, point_spec, trial_seeds
from .storage import Heartbeat

if TYPE_CHECKING:
    import optuna

__all__ = ["run_batch", "StoreUnavailable"]


class StoreUnavailable(GrokexpError):
    """The tracking store would not create a trial's run; the batch's points are queued again
    and nothing was trained."""


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


def _give_back(runs: Sequence[TrialRun], study: optuna.Study, tracker: Tracker,
               heartbeat: Heartbeat) -> None:
    """Interrupted: fail the untold trials and enqueue their points again for any worker."""
    from optuna.trial import TrialState

    for run in runs:
        heartbeat.remove(run.trial.number)
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
        heartbeat.remove(trial.number)
        try:
            trial.set_user_attr("store_unavailable", True)
            study.tell(trial, state=TrialState.FAIL)
            study.enqueue_trial(params, user_attrs={"retry_of": trial.number})
        except Exception:  # best effort, as in _give_back: stale detection is the fallback
            pass
