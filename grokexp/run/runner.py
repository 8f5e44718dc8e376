"""One experiment end to end: members → populations → training → tracked runs and figures.

This is where the pieces meet: the spec's members are grouped into populations of equal
shape, each trained by ``train.train`` with the runner's hooks (``hooks.py``): the diagnostics,
the checkpoints, and the tracking hook, through which every measured value reaches the
tracker. One figure log draws every figure of the run. With more than one member there is a
parent run.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..diagnostics.hook import DiagnosticsHook
from ..engine.arch import architecture_of
from ..engine.data import (
    SPLIT_DIGEST_TAG,
    PairTable,
    SplitDataset,
    make_splits,
    pair_table,
    split_dataset,
)
from ..engine.model import Population
from ..engine.sweep import Member, group_by_shape
from ..engine.train import History, Hook, Interrupted, LoopState, MemberSeries, TrainData, train
from ..errors import RunInterrupted
from ..figures.run import ACCURACY_COLUMNS, overlay_figures
from ..figures.sets import sweep_figures
from ..spec.base import flatten
from ..spec.io import masked_spec_toml, spec_hash, spec_to_dict
from ..spec.masking import mask_values
from ..spec.schema import Spec
from ..tracking.checkpoint import CHECKPOINT_ARTIFACT, Checkpoint
from ..tracking.figure_log import FigureLog
from ..tracking.redact import redact_params
from ..tracking.resume import CHECKPOINT_ID_TAG
from ..tracking.tracker import Tracker
from .helpers import Helpers, helpers_of
from .hooks import CheckpointHook, TrackingHook

__all__ = ["MemberResult", "ExperimentResult", "TrackingHook", "run_experiment",
           "resolve_device", "train_group", "SplitProvenance"]


@dataclass
class MemberResult:
    """What ``grokexp run --json`` reports per member."""

    index: int
    run_id: str
    varied: dict[str, Any]
    train_grok_epoch: int | None
    test_grok_epoch: int | None
    grokking_delay: int | None
    final_train_acc: float | None
    final_test_acc: float | None
    status: str
    reason: str = ""


@dataclass
class ExperimentResult:
    experiment_id: str
    parent_run_id: str | None
    members: list[MemberResult] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"experiment_id": self.experiment_id, "parent_run_id": self.parent_run_id,
                "run_ids": [m.run_id for m in self.members],
                "members": [mask_values(asdict(m)) for m in self.members]}


def resolve_device(name: str) -> torch.device:
    """'auto' is CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _member_result(member: Member, run_id: str, history: MemberSeries) -> MemberResult:
    return MemberResult(
        index=member.index, run_id=run_id, varied=member.varied,
        train_grok_epoch=history.train_grok_epoch, test_grok_epoch=history.test_grok_epoch,
        grokking_delay=history.grokking_delay, final_train_acc=history.final("train_acc"),
        final_test_acc=history.final("test_acc"), status=history.status,
        reason=history.reason)


def _run_tags(spec: Spec, extra: dict[str, str]) -> dict[str, str]:
    return {"grokexp.spec_hash": spec_hash(spec), "grokexp.spec_name": spec.name, **extra}


def train_group(members: Sequence[Member], device: torch.device,
                hooks: Sequence[Hook], should_stop: Callable[[], bool] | None = None,
                resume: LoopState | None = None) -> History:
    """Train one population of equal-shape members (no tracking here)."""
    spec = members[0].spec
    table = pair_table(spec.task)
    splits = make_splits(spec.task, table, [m.spec.train.split_seed for m in members])
    if resume is None:
        population = Population.from_specs([m.spec for m in members], device)
    else:
        population = Population(architecture_of(spec),
                                {n: t.to(device) for n, t in resume.params.items()})
    return train(population, members, TrainData(table, splits), hooks,
                 should_stop=should_stop, resume=resume)


class SplitProvenance:
    """Each spec's split as a data set, computed once per (task, split seed)."""

    def __init__(self) -> None:
        self._tables: dict[tuple[int, str], PairTable] = {}
        self._splits: dict[tuple[str, int], SplitDataset] = {}

    def of(self, spec: Spec) -> SplitDataset:
        task, seed = spec.task, spec.train.split_seed
        key = (task.model_dump_json(), seed)
        if key not in self._splits:
            table_key = (task.tokens, task.operation)
            if table_key not in self._tables:
                self._tables[table_key] = pair_table(task)
            self._splits[key] = split_dataset(task, seed, self._tables[table_key])
        return self._splits[key]

    @staticmethod
    def tags(dataset: SplitDataset) -> dict[str, str]:
        return {SPLIT_DIGEST_TAG: dataset.digest}

    @staticmethod
    def log(tracker: Tracker, run_id: str, dataset: SplitDataset) -> None:
        tracker.log_dataset(run_id, dataset.name, dataset.digest, dataset.source,
                            dataset.schema, dataset.profile)


def _start_runs(spec: Spec, members: Sequence[Member], tracker: Tracker,
                tags: dict[str, str]) -> tuple[str | None, dict[int, str]]:
    """The parent run (K > 1) and one run per member, with params, tags, resolved spec and
    its split as a data set input (digest also the ``grokexp.split_digest`` tag)."""
    parent_id = None
    if len(members) > 1:
        parent_id = tracker.start_run(
            spec.name, redact_params(flatten(spec_to_dict(spec))),
            _run_tags(spec, {**tags, "grokexp.role": "sweep"}))
        tracker.log_text(parent_id, masked_spec_toml(spec), "spec.resolved.toml")
    run_ids: dict[int, str] = {}
    splits = SplitProvenance()
    for member in members:
        name = spec.name if parent_id is None else f"{spec.name}/{member.label}"
        dataset = splits.of(member.spec)
        member_tags = _run_tags(member.spec, {**tags, "grokexp.member": str(member.index),
                                              **splits.tags(dataset)})
        params = flatten(spec_to_dict(member.spec))
        params.update({f"varied.{k}": v for k, v in member.varied.items()})
        run_ids[member.index] = tracker.start_run(name, redact_params(params), member_tags,
                                                  parent_id)
        splits.log(tracker, run_ids[member.index], dataset)
        tracker.log_text(run_ids[member.index], masked_spec_toml(member.spec),
                         "spec.resolved.toml")
    return parent_id, run_ids


def run_experiment(spec: Spec, members: Sequence[Member], tracker: Tracker,
                   hooks: Sequence[Hook] = (), device: torch.device | None = None,
                   tags: dict[str, str] | None = None, *,
                   should_stop: Callable[[], bool] | None = None,
                   resume: Checkpoint | None = None,
                   helpers: Helpers | None = None) -> ExperimentResult:
    """Train every member, logging to the tracker; returns the per-member results.

    When ``should_stop`` answers True between two epochs, a checkpoint is logged on the root
    run (the parent, or the only run), open runs end KILLED and :class:`RunInterrupted` is
    raised. ``resume`` is such a checkpoint: its runs are reopened and training goes on.
    ``helpers``: figure workers and a probe process the caller started (``helpers_for``),
    which the run stops when it ends, finished or not; should it fail before its training
    begins (the store refusing its runs), stopping them is the caller's (``helpers_for``).
    """
    tags = tags or {}
    by_index = {m.index: m for m in members}
    if resume is None:
        parent_id, run_ids = _start_runs(spec, members, tracker, tags)
        done: list[MemberSeries] = []
    else:
        parent_id, run_ids, done = resume.parent_run_id, dict(resume.run_ids), resume.done
        finished_before = {h.index for h in [*done, *resume.state.histories]
                           if h.index not in resume.state.active}
        for run_id in [parent_id, *run_ids.values()]:
            if run_id is not None and run_id not in {run_ids[i] for i in finished_before}:
                tracker.reopen_run(run_id)
    result = ExperimentResult(tracker.experiment_id, parent_id)
    histories: list[tuple[Member, MemberSeries]] = []

    def finished(member: Member, history: MemberSeries) -> None:
        histories.append((member, history))
        result.members.append(_member_result(member, run_ids[member.index], history))

    if resume is not None:
        for h in [*done, *resume.state.histories]:
            if h.index not in resume.state.active:
                finished(by_index[h.index], h)
    # the figure workers and the probe process: the command's, or started now, so that
    # their start-up overlaps the population's set-up at least
    helpers = helpers or helpers_of(spec, members)
    figure_log = FigureLog(tracker, helpers.figures)
    tracking = TrackingHook(tracker, run_ids, finished, figure_log)
    diagnostics = DiagnosticsHook(tracker, run_ids, figure_log=figure_log, report=tracking.log,
                                  probe_process=helpers.probes)
    ours: list[Hook] = [CheckpointHook(tracker, run_ids), diagnostics, tracking]
    open_runs = set(run_ids.values()) | ({parent_id} if parent_id else set())
    try:
        for position, group in enumerate(group_by_shape(members)):
            if resume is not None and position < resume.group:
                continue
            state = resume.state if resume is not None and position == resume.group else None
            try:
                train_group(group, device or resolve_device(group[0].spec.train.device),
                            [*hooks, *ours], should_stop, state)
            except Interrupted as stop:
                group_ids = {m.index for m in group}
                checkpoint = Checkpoint(
                    spec_toml=masked_spec_toml(spec), spec_hash=spec_hash(spec),
                    parent_run_id=parent_id, run_ids=run_ids, group=position,
                    state=stop.state,
                    done=[h for m, h in histories if m.index not in group_ids])
                tracker.flush()
                tracker.log_state(checkpoint.root_run_id, checkpoint.to_dict(),
                                  CHECKPOINT_ARTIFACT)
                # a new id per checkpoint: what a resume claims (tracking.resume)
                tracker.set_tags(checkpoint.root_run_id,
                                 {"grokexp.checkpoint_epoch": str(stop.state.epoch),
                                  CHECKPOINT_ID_TAG: uuid.uuid4().hex})
                raise RunInterrupted(checkpoint.root_run_id, stop.state.epoch) from None
    except BaseException:
        # best effort on the way out, each step on its own: the first error is the one to
        # report, and a failing write must not keep the other runs from ending KILLED
        with contextlib.suppress(Exception):
            diagnostics.finish()  # what was measured and drawn before the stop is kept
        with contextlib.suppress(Exception):
            figure_log.finish()
        with contextlib.suppress(Exception):
            tracking.finish()  # the networks of the members that had finished
        with contextlib.suppress(Exception):
            tracker.flush()
        ended = {m.run_id for m in result.members}
        for run_id in open_runs - ended:
            with contextlib.suppress(Exception):
                tracker.end_run(run_id, "KILLED")
        raise
    result.members.sort(key=lambda m: m.index)
    if parent_id is not None:
        histories.sort(key=lambda mh: mh[0].index)
        figure_log.submit(
            parent_id, overlay_figures, [h.only(*ACCURACY_COLUMNS) for _, h in histories],
            [m.label for m, _ in histories], spec.name)
        swept = diagnostics.sweep_series(members)  # Figs. 5, 9, 10
        if swept:
            figure_log.submit(parent_id, sweep_figures, swept, spec.metrics.grok_threshold,
                              spec.name)
        tracker.log_text(parent_id, _members_table(result), "members.md")
    try:  # every probe, figure and network logged before the parent run ends
        diagnostics.finish()
    finally:
        try:
            figure_log.finish()
        finally:
            tracking.finish()
    tracker.flush()  # probes that finished after their member's run had ended
    if parent_id is not None:
        tracker.end_run(parent_id, "FINISHED" if all(
            m.status == "FINISHED" for m in result.members) else "FAILED")
    return result


def _members_table(result: ExperimentResult) -> str:
    lines = ["| member | varied | train grok | test grok | delay | status |",
             "|---|---|---|---|---|---|"]
    for m in result.members:
        varied = ", ".join(f"{k}={v}" for k, v in mask_values(m.varied).items())
        lines.append(f"| {m.index} | {varied} | {m.train_grok_epoch} | {m.test_grok_epoch} | "
                     f"{m.grokking_delay} | {m.status} |")
    return "\n".join(lines) + "\n"
