"""``grokexp optimize``: an Optuna study, ask-and-tell, one population per batch of trials.

A worker asks ``batch`` trials, trains them × their seeds as one population
(``batch.run_batch``), tells each trial when its seeds are done, and repeats until the
study holds ``n_trials`` finished trials. Any number of workers may run the same command on
the same storage; ``n_trials`` is the study's total, shared by all of them. The first worker
creates the study, enqueues the known points and opens the MLflow parent run; every worker
ends by printing the best trials and writing ``best.toml``.

The tracking store may go away mid-study (a server restarted, a network cut): the Optuna
side does not depend on it. The tracker retries each write, then journals what it could not
write into a recovery folder, and training goes on. Before its next batch the worker waits
(``StudyOptions.store_wait_s``) for the store to answer, re-logs the folder into it as
``grokexp relog`` would and goes on online (``tracking.guard.StoreGuard``); at the end, a
store still away leaves the folder and ``StudyResult.store_failure`` says how to re-log it.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engine.seeding import derived_seed
from ..engine.train import Hook
from ..errors import SpecError
from ..spec.base import flatten
from ..spec.io import masked_spec_toml, spec_to_dict, spec_to_toml
from ..spec.optimize import OptimizeSpec
from ..spec.schema import Spec
from ..tracking.guard import StoreGuard
from ..tracking.redact import redact_params
from ..tracking.retry import Backoff, retry
from ..tracking.tracker import Tracker
from .ask import ask_batch, counts, frozen_trial, taken
from .batch import StoreUnavailable, run_batch
from .report import (
    best_rows,
    best_spec,
    completed,
    format_table,
    log_best_networks,
    ranked,
    study_figures,
)
from .sampler import make_pruner, make_sampler
from .space import budget_epochs, check_space
from .storage import (
    Heartbeat,
    StorageError,
    StorageTarget,
    create_or_load_study,
    fail_stale_trials,
    open_storage,
)

if TYPE_CHECKING:
    import optuna

__all__ = ["StudyOptions", "StudyResult", "run_study", "check_study_spec", "study_hash"]

_PARENT_ATTR = "mlflow_parent_run_id"
_HASH_ATTR = "grokexp_spec_hash"
_MODEL_ATTR = "logged_model_trial"  # the trial whose networks were logged as models
# a joining worker waits this long for the creator's parent run to be recorded (retry.py)
_PARENT_WAIT = Backoff(first_s=0.5, cap_s=2.0, attempts=None, within_s=30.0)


@dataclass(frozen=True)
class StudyOptions:
    source: str
    storage: StorageTarget
    study_name: str
    n_trials: int
    batch: int
    out_dir: Path
    # how long a worker whose tracking store failed waits for it before its next batch
    store_wait_s: float = 300.0


@dataclass
class StudyResult:
    study_name: str
    parent_run_id: str | None
    trained_here: list[int] = field(default_factory=list)
    complete: int = 0
    finished: bool = False
    best: list[dict[str, Any]] = field(default_factory=list)
    best_toml: Path | None = None
    table: str = ""
    best_censored: bool | None = None  # None: no complete trial yet
    summary: str = ""  # one line on the best trial, in words a reader cannot misread
    # the tracking store was still failing at the end: what happened and how to re-log
    store_failure: list[str] = field(default_factory=list)
    recovery: Path | None = None  # the recovery folder holding what the store missed


def study_hash(spec: Spec) -> str:
    """What workers of one study must agree on: the spec minus budget and tracking."""
    raw = spec_to_dict(spec)
    raw.pop("tracking", None)
    if raw.get("model", {}).get("architecture") == "mlp":  # as specs before the key hashed
        del raw["model"]["architecture"]
    for key in ("n_trials", "batch", "heartbeat_s", "grace_s"):
        raw.get("optimize", {}).pop(key, None)
    raw.get("metrics", {}).pop("figures", None)  # a study's trials draw no member figures
    blob = json.dumps(raw, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _parent_run(study: optuna.Study, created: bool, spec: Spec, opts: StudyOptions,
                tracker: Tracker) -> str:
    """The study's MLflow parent run: made by the creator, found by everyone else."""
    if not created and (found := _recorded_parent(study, tracker)) is not None:
        return found
    tags = {"grokexp.role": "study", "grokexp.study": opts.study_name,
            "grokexp.storage": opts.storage.display, "grokexp.source": opts.source,
            "optuna.sampler": spec.optimize.sampler if spec.optimize else ""}
    run_id = tracker.start_run(f"study-{opts.study_name}",
                               redact_params(flatten(spec_to_dict(spec))), tags)
    tracker.log_text(run_id, masked_spec_toml(spec), "spec.resolved.toml")
    if created or _PARENT_ATTR not in study.user_attrs:
        study.set_user_attr(_PARENT_ATTR, run_id)
    return run_id


class _NotYet(Exception):
    """The parent run is not recorded yet, or the tracking store did not answer."""


def _recorded_parent(study: optuna.Study, tracker: Tracker) -> str | None:
    """The parent run the study's creator recorded, once the store holds it (asked again
    while it is not recorded yet or the store does not answer, for up to 30 s); None when it
    is still not there, or is recorded in another tracking store (this worker gets its own).
    """
    def look() -> str | None:
        run_id = study.user_attrs.get(_PARENT_ATTR)
        exists = tracker.run_exists(run_id) if run_id else None
        if exists is None:
            raise _NotYet
        return str(run_id) if exists else None

    try:
        return retry(look, _PARENT_WAIT, retry_on=lambda err: isinstance(err, _NotYet))
    except _NotYet:
        return None


def check_study_spec(spec: Spec, source: str) -> OptimizeSpec:
    """Everything about the spec a study needs, checked before anything is created."""
    if spec.optimize is None:
        raise SpecError([f"{source}: optimize: required by grokexp optimize "
                         "(an [optimize] table with a space)"])
    if spec.sweep:
        raise SpecError([f"{source}: sweep: not used by grokexp optimize "
                         "(seeds per trial are optimize.seeds)"])
    check_space(spec, source)
    return spec.optimize


def run_study(spec: Spec, opts: StudyOptions, tracker: Tracker,
              echo: Callable[[str], None] = print, hooks: Sequence[Hook] = ()) -> StudyResult:
    """Work on the study until it holds ``n_trials`` finished trials; then report."""
    opt = check_study_spec(spec, opts.source)
    storage = open_storage(opts.storage)
    worker = uuid.uuid4().hex[:12]
    sampler = make_sampler(opt, derived_seed(opt.seed, f"worker:{worker}") % 2**32)
    study, created = create_or_load_study(storage, opts.study_name, sampler, make_pruner(opt))
    digest = study_hash(spec)
    if created:
        study.set_user_attr(_HASH_ATTR, digest)
        for point in opt.enqueue:
            study.enqueue_trial(flatten(point), user_attrs={"enqueued": True},
                                skip_if_exists=True)
    elif study.user_attrs.get(_HASH_ATTR, digest) != digest:
        raise StorageError(f"study {opts.study_name!r} in {opts.storage.display} was made "
                           "from a different spec; choose another --study")
    result = StudyResult(opts.study_name, _parent_run(study, created, spec, opts, tracker))
    echo(f"study {opts.study_name} in {opts.storage.display}: {len(completed(study))} "
         f"complete of {opts.n_trials}; worker {worker}")

    def told(run: Any) -> None:
        result.trained_here.append(run.trial.number)
        frozen = frozen_trial(study, run.trial.number)
        shown = "censored" if frozen.user_attrs.get("censored") else _fmt(frozen.value)
        echo(f"trial {run.trial.number}: {run.outcome} {shown} {run.params}")

    guard = StoreGuard(tracker, echo, opts.store_wait_s)
    with Heartbeat(storage, study.study_name, opt.heartbeat_s) as heartbeat:
        while True:
            for number, attrs in fail_stale_trials(study, storage, opt.grace_s):
                echo(f"trial {number}: its worker stopped; failed and queued again")
                if attrs.get("mlflow_run_id") and tracker.run_exists(attrs["mlflow_run_id"]):
                    tracker.end_run(attrs["mlflow_run_id"], "KILLED")
            # trials left to ask need their MLflow runs: a store that failed must be back
            if taken(counts(study)) < opts.n_trials and not guard.ready():
                echo(f"tracking store {guard.uri} still failing after {opts.store_wait_s:g} s: "
                     "this worker asks no more trials")
                break
            trials = ask_batch(study, opt, opts.n_trials, opts.batch, heartbeat)
            if trials:
                try:
                    run_batch(study, trials, spec, opts.source, tracker, result.parent_run_id,
                              heartbeat, hooks, told, guard.check, worker)
                except StoreUnavailable as err:
                    guard.failed(str(err))
                    echo(f"{err}; the batch's trials are queued again")
                guard.check()
            elif counts(study).get("RUNNING", 0):
                time.sleep(min(opt.heartbeat_s, 1.0))  # others' trials: finish or go stale
            else:
                break
    _finish(study, spec, opts, tracker, result)
    guard.check()
    if not guard.final():
        result.recovery, result.store_failure = guard.folder, _store_failure(guard)
    return result


def _store_failure(guard: StoreGuard) -> list[str]:
    """What to say of a tracking store still failing at the end, and how to re-log."""
    lines = [f"error: tracking store {guard.uri}: {guard.failure}"]
    if guard.folder is not None:
        lines += [f"nothing is lost: every trial trained here was told to the study; what "
                  f"MLflow missed is in {guard.folder}",
                  f"once the store works again: grokexp relog {guard.folder} --tracking-uri "
                  f"{guard.uri}"]
    return lines


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _finish(study: optuna.Study, spec: Spec, opts: StudyOptions, tracker: Tracker,
            result: StudyResult) -> StudyResult:
    assert spec.optimize is not None and result.parent_run_id is not None
    parent = result.parent_run_id
    states = counts(study)
    result.complete = states.get("COMPLETE", 0)
    result.finished = states.get("COMPLETE", 0) + states.get("PRUNED", 0) >= opts.n_trials
    result.best = best_rows(study)
    result.table = format_table(result.best, spec.optimize.objective)
    for name, figure in study_figures(study, spec).items():
        tracker.log_figure(parent, figure, name)
    tracker.log_text(parent, result.table, "best_trials.md")
    if result.best:
        best = ranked(study)[0]  # never a censored trial while one generalised
        result.best_censored = bool(best.user_attrs.get("censored"))
        chosen = best_spec(spec, best, opts.study_name, opts.source)
        text = spec_to_toml(chosen)
        opts.out_dir.mkdir(parents=True, exist_ok=True)
        result.best_toml = opts.out_dir / "best.toml"
        result.best_toml.write_text(text, encoding="utf-8")
        tracker.log_text(parent, masked_spec_toml(chosen), "best.toml")
        if study.user_attrs.get(_MODEL_ATTR) != best.number and log_best_networks(
                spec, best, chosen, tracker):  # once per best trial, whichever worker ends
            study.set_user_attr(_MODEL_ATTR, best.number)
        if result.best_censored:  # the penalty is no measurement: no best_value for it
            result.summary = (f"no trial generalised within the budget of "
                              f"{budget_epochs(spec)} epochs: all {result.complete} complete "
                              f"trial(s) censored; best.toml holds trial {best.number}'s point")
        else:
            tracker.log_metrics(parent, best.number, {"best_value": float(best.value)})  # type: ignore[arg-type]
            result.summary = (f"best: trial {best.number}, {spec.optimize.objective} "
                              f"{best.value:g} (upper median over seeds)")
        tracker.set_tags(parent, {"grokexp.best_trial": str(best.number),
                                  "grokexp.best_censored": str(result.best_censored).lower()})
    tracker.set_tags(parent, {"grokexp.trials_complete": str(result.complete)})
    if result.finished:
        tracker.end_run(parent, "FINISHED")
    else:
        tracker.flush()
    return result
