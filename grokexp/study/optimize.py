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
``grokexp relog`` would and goes on online; at the end, a store still away leaves the folder
and ``StudyResult.store_failure`` says how to re-log it.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
import warnings
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
from ..tracking.redact import redact_params, redact_text, redact_uri
from ..tracking.tracker import Tracker
from .batch import StoreUnavailable, budget_epochs, check_space, run_batch, suggest
from .report import best_rows, best_spec, completed, format_table, ranked, study_figures
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

__all__ = ["StudyOptions", "StudyResult", "run_study", "check_study_spec", "make_sampler",
           "make_pruner"]

_PARENT_ATTR = "mlflow_parent_run_id"
_HASH_ATTR = "grokexp_spec_hash"


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


def make_sampler(opt: OptimizeSpec, seed: int) -> optuna.samplers.BaseSampler:
    """TPE (multivariate, constant liar), GP or random, seeded for this worker."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if opt.sampler == "gp":
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=opt.n_startup_trials)
        if opt.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(multivariate=True, constant_liar=True, seed=seed,
                                          n_startup_trials=opt.n_startup_trials)


def make_pruner(opt: OptimizeSpec) -> optuna.pruners.BasePruner:
    """Reported value: 1 − test accuracy (median over the trial's seeds) at an evaluation.

    ``forecast`` needs the seeds' histories, which only the batch's hook holds: it decides
    there (``batch.StudyHook``), and Optuna's own pruner does nothing.
    """
    import optuna

    if opt.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=max(1, opt.n_startup_trials // 2),
                                           n_warmup_steps=opt.prune_warmup)
    if opt.pruner == "threshold":
        return optuna.pruners.ThresholdPruner(upper=1.0 - opt.prune_min_test_acc,
                                              n_warmup_steps=opt.prune_warmup)
    return optuna.pruners.NopPruner()


def study_hash(spec: Spec) -> str:
    """What workers of one study must agree on: the spec minus budget and tracking."""
    raw = spec_to_dict(spec)
    raw.pop("tracking", None)
    for key in ("n_trials", "batch", "heartbeat_s", "grace_s"):
        raw.get("optimize", {}).pop(key, None)
    blob = json.dumps(raw, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _counts(study: optuna.Study) -> dict[str, int]:
    out: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        out[trial.state.name] = out.get(trial.state.name, 0) + 1
    return out


def _taken(counts: dict[str, int]) -> int:
    return sum(counts.get(s, 0) for s in ("COMPLETE", "PRUNED", "RUNNING"))


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
        if n_trials - _taken(_counts(study)) <= 0:
            break
        trial = study.ask()
        heartbeat.add(trial._trial_id)
        params = {key: suggest(trial, key, dim) for key, dim in dims.items()}
        frozen = study._storage.get_trial(trial._trial_id)
        if "fixed_params" not in frozen.system_attrs:
            live = [t for t in study.get_trials(deepcopy=False)
                    if t.number <= trial.number and t.state != TrialState.FAIL]
            if len(live) > n_trials:
                heartbeat.remove(trial._trial_id)
                trial.set_user_attr("surplus", True)
                study.tell(trial, state=TrialState.FAIL)
                break
        asked.append((trial, params))
    return asked


def _parent_run(study: optuna.Study, created: bool, spec: Spec, opts: StudyOptions,
                tracker: Tracker) -> str:
    """The study's MLflow parent run: made by the creator, found by everyone else."""
    if not created:
        for _ in range(60):
            run_id = study.user_attrs.get(_PARENT_ATTR)
            exists = _run_exists(tracker, run_id) if run_id else None
            if exists:
                return str(run_id)
            if exists is False:
                break  # recorded in another tracking store: this worker gets its own
            time.sleep(0.5)  # not recorded yet, or the store did not answer: ask again
    tags = {"grokexp.role": "study", "grokexp.study": opts.study_name,
            "grokexp.storage": opts.storage.display, "grokexp.source": opts.source,
            "optuna.sampler": spec.optimize.sampler if spec.optimize else ""}
    run_id = tracker.start_run(f"study-{opts.study_name}",
                               redact_params(flatten(spec_to_dict(spec))), tags)
    tracker.log_text(run_id, masked_spec_toml(spec), "spec.resolved.toml")
    if created or _PARENT_ATTR not in study.user_attrs:
        study.set_user_attr(_PARENT_ATTR, run_id)
    return run_id


def _run_exists(tracker: Tracker, run_id: str) -> bool | None:
    """Whether the store holds that run; None when the store did not answer (an outage is no
    proof that the run is missing)."""
    client = getattr(tracker, "client", None)
    if client is None:
        return run_id in getattr(tracker, "runs", {})
    try:
        client.get_run(run_id)
        return True
    except Exception as err:  # MLflow raises its own not-found error type
        return False if getattr(err, "error_code", "") == "RESOURCE_DOES_NOT_EXIST" else None


class StoreGuard:
    """The tracking store as one worker sees it: says when it fails, waits for it to come
    back, and gives it what it missed.

    A tracker that keeps failing goes offline into a recovery folder (``tracker.failure``,
    ``tracker.journal``, see :class:`~..tracking.mlflow_tracker.MlflowTracker`). :meth:`check`
    says so once; :meth:`ready` (before each batch) waits for the store to answer and has the
    tracker re-log the folder and go back online (``tracker.reconnect()``);
    :meth:`final` (at the end) tries that once. Trackers without a store (tests) are always
    ready.
    """

    def __init__(self, tracker: Tracker, echo: Callable[[str], None], wait_s: float):
        self.tracker: Any = tracker  # an MlflowTracker's failure, journal and client, if any
        self.echo, self.wait_s = echo, wait_s
        self.problem: str | None = None  # a failure outside the tracker's writes
        self._said = False

    @property
    def failure(self) -> str | None:
        return getattr(self.tracker, "failure", None) or self.problem

    @property
    def folder(self) -> Path | None:
        journal = getattr(self.tracker, "journal", None)
        return None if journal is None else Path(journal.folder)

    @property
    def uri(self) -> str:
        return redact_uri(str(getattr(self.tracker, "tracking_uri", "")))

    def check(self) -> None:
        """After tracking writes: say once that the store failed and where writes go now."""
        if self._said or getattr(self.tracker, "failure", None) is None:
            return
        self._said = True
        lost = getattr(self.tracker, "lost", None)
        kept = (f"what the store misses is lost: {lost}" if lost is not None
                else f"what the store misses is kept in {self.folder}")
        self.echo(f"tracking store {self.uri}: {self.tracker.failure}; training goes on, "
                  f"{kept}")

    def lost(self, problem: str) -> None:
        self.problem = problem
        self.echo(f"{problem}; the batch's trials are queued again")

    def _catch_up(self) -> None:
        """Raises while the store still fails; else the tracker re-logs its folder and goes
        online (:meth:`~..tracking.mlflow_tracker.MlflowTracker.reconnect`)."""
        was_failing = self.failure is not None
        replayed = self.tracker.reconnect()
        if replayed is not None:
            folder, counts = replayed
            shown = ", ".join(f"{v} {k}" for k, v in counts.items())
            self.echo(f"tracking store {self.uri} answers again: re-logged {folder} ({shown})")
        elif was_failing:
            self.echo(f"tracking store {self.uri} answers again")
        self.problem, self._said = None, False

    def ready(self) -> bool:
        """Before a batch: True once the store takes writes again (at once while it works);
        False if it is still failing after ``wait_s``."""
        if self.failure is None or getattr(self.tracker, "reconnect", None) is None:
            return True
        deadline = time.monotonic() + self.wait_s
        delay, waiting = 0.5, False
        while True:
            try:
                self._catch_up()
                return True
            except Exception as err:  # requests', MLflow's and relog's errors alike
                if time.monotonic() + delay > deadline:
                    self.problem = self.problem or _one_line(err)
                    return False
                if not waiting:
                    waiting = True
                    self.echo(f"waiting up to {self.wait_s:g} s for tracking store {self.uri} "
                              f"before the next batch ({_one_line(err)})")
                time.sleep(delay)
                delay = min(2 * delay, 5.0)

    def final(self, result: StudyResult) -> None:
        """At the end: one more try; a store still away is said in ``result``."""
        if self.failure is None or getattr(self.tracker, "reconnect", None) is None:
            return
        try:
            self._catch_up()
            return
        except Exception as err:
            self.problem = self.problem or _one_line(err)
        failure = self.failure
        folder = result.recovery = self.folder
        result.store_failure = [f"error: tracking store {self.uri}: {failure}"]
        if folder is not None:
            result.store_failure += [
                f"nothing is lost: every trial trained here was told to the study; what "
                f"MLflow missed is in {folder}",
                f"once the store works again: grokexp relog {folder} --tracking-uri "
                f"{self.uri}"]


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return redact_text(text[0] if text else type(err).__name__)


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
        frozen = study._storage.get_trial(run.trial._trial_id)
        shown = "censored" if frozen.user_attrs.get("censored") else _fmt(frozen.value)
        echo(f"trial {run.trial.number}: {run.outcome} {shown} {run.params}")

    guard = StoreGuard(tracker, echo, opts.store_wait_s)
    with Heartbeat(storage, opt.heartbeat_s) as heartbeat:
        while True:
            for number, attrs in fail_stale_trials(study, opt.grace_s):
                echo(f"trial {number}: its worker stopped; failed and queued again")
                if attrs.get("mlflow_run_id") and _run_exists(tracker, attrs["mlflow_run_id"]):
                    tracker.end_run(attrs["mlflow_run_id"], "KILLED")
            # trials left to ask need their MLflow runs: a store that failed must be back
            if _taken(_counts(study)) < opts.n_trials and not guard.ready():
                echo(f"tracking store {guard.uri} still failing after {opts.store_wait_s:g} s: "
                     "this worker asks no more trials")
                break
            trials = ask_batch(study, opt, opts.n_trials, opts.batch, heartbeat)
            if trials:
                try:
                    run_batch(study, trials, spec, opts.source, tracker, result.parent_run_id,
                              heartbeat, hooks, told, guard.check, worker)
                except StoreUnavailable as err:
                    guard.lost(str(err))
                guard.check()
            elif _counts(study).get("RUNNING", 0):
                time.sleep(min(opt.heartbeat_s, 1.0))  # others' trials: finish or go stale
            else:
                break
    _finish(study, spec, opts, tracker, result)
    guard.check()
    guard.final(result)
    return result


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _finish(study: optuna.Study, spec: Spec, opts: StudyOptions, tracker: Tracker,
            result: StudyResult) -> StudyResult:
    assert spec.optimize is not None and result.parent_run_id is not None
    parent = result.parent_run_id
    counts = _counts(study)
    result.complete = counts.get("COMPLETE", 0)
    result.finished = counts.get("COMPLETE", 0) + counts.get("PRUNED", 0) >= opts.n_trials
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
