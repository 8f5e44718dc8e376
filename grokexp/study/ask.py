"""Asking trials of a shared study without taking it past its ``n_trials``.

Any number of workers ask trials of one study; each counts the trials already taken before it
asks, and a trial that a race made one too many is failed at once (see :func:`ask_batch`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..spec.optimize import OptimizeSpec
from .space import suggest
from .storage import Heartbeat

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

__all__ = ["counts", "taken", "frozen_trial", "ask_batch"]


def counts(study: optuna.Study) -> dict[str, int]:
    """How many of the study's trials are in each state (by the state's name)."""
    out: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        out[trial.state.name] = out.get(trial.state.name, 0) + 1
    return out


def taken(counts: dict[str, int]) -> int:
    """Trials that count towards ``n_trials``: finished ones and those being trained."""
    return sum(counts.get(s, 0) for s in ("COMPLETE", "PRUNED", "RUNNING"))


def frozen_trial(study: optuna.Study, number: int) -> FrozenTrial:
    """Trial ``number`` as the study's storage holds it now."""
    return next(t for t in study.get_trials(deepcopy=False) if t.number == number)


def ask_batch(study: optuna.Study, opt: OptimizeSpec, n_trials: int, batch: int,
              heartbeat: Heartbeat) -> list[tuple[optuna.Trial, dict[str, Any]]]:
    """Up to ``batch`` trials, never taking the study past ``n_trials``.

    Workers race between counting and asking; a freshly created trial whose rank among the
    study's live trials is beyond ``n_trials`` is told FAIL (user attr ``surplus``) at once.
    """
    from optuna.trial import TrialState

    dims = opt.dims()
    asked = []
    for _ in range(batch):
        if n_trials - taken(counts(study)) <= 0:
            break
        trial = study.ask()
        heartbeat.add(trial.number)
        params = {key: suggest(trial, key, dim) for key, dim in dims.items()}
        # an enqueued point (Study.enqueue_trial writes it as the system attr fixed_params)
        # is never surplus
        if "fixed_params" not in frozen_trial(study, trial.number).system_attrs:
            live = [t for t in study.get_trials(deepcopy=False)
                    if t.number <= trial.number and t.state != TrialState.FAIL]
            if len(live) > n_trials:
                heartbeat.remove(trial.number)
                trial.set_user_attr("surplus", True)
                study.tell(trial, state=TrialState.FAIL)
                break
        asked.append((trial, params))
    return asked
