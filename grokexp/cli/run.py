"""What ``grokexp run`` and ``grokexp relog`` do, behind commands.py's options.

Like commands.py this is the shell's side: it reads the environment, files and signals, prints,
and turns outcomes into exit codes (0 done, 1 a member or the store failed, 2 bad input,
130/143 interrupted by SIGINT/SIGTERM).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from ..errors import RunInterrupted, SpecError

__all__ = ["do_run", "do_relog", "memory_limit", "collector_paused_for_imports"]

_COLLECTING: list[bool] = []  # whether the collector ran before the command paused it


@contextlib.contextmanager
def collector_paused_for_imports() -> Iterator[None]:
    """Around a command that imports torch, mlflow and matplotlib: Python's cyclic garbage
    collector paused until :func:`_imports_done`, then those imports kept out of its scans
    until the command returns.

    The imports make about a million objects and no garbage, yet the collector scanned
    them all again seven times while they came (0.5 s of CPU here), and at least once more
    later; the process ends by collecting them all once more (1.5 s after torch and
    mlflow), unless they are frozen then (``atexit``, registered by ``main``).
    """
    _COLLECTING.append(gc.isenabled())
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()  # a process that goes on (a test, a notebook) collects them again
        if _COLLECTING.pop():
            gc.enable()


def _imports_done() -> None:
    """Everything made so far out of the collector's scans, and the collector back on."""
    if _COLLECTING and _COLLECTING[-1] and not gc.isenabled():
        gc.freeze()
        gc.enable()


def memory_limit(option_gib: float | None, device: Any) -> tuple[int, str]:
    """Bytes a population may use: ``--memory-limit``, else 80% of what is free now."""
    from ..run.budget import GIB

    if option_gib is not None:
        return int(option_gib * GIB), "--memory-limit"
    if getattr(device, "type", "cpu") == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(0.8 * free), f"80% of free memory on {device}"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(0.8 * int(line.split()[1]) * 1024), "80% of available memory"
    except OSError:
        pass
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(0.8 * total), "80% of physical memory"


def recovery_base(option: str) -> Path:
    """Where recovery folders go: ``--recovery-dir``, checked to take files before anything
    is trained (one line, exit 2, if it cannot; never another place instead). It is made
    only when the store fails."""
    from .folders import usable_folder

    return usable_folder(option, "--recovery-dir")


def do_run(spec_file: str | None, overrides: tuple[str, ...], tracking_uri: str | None,
           device: str | None, as_json: bool, quiet: bool, resume: str | None,
           recovery_dir: str, memory_gib: float | None, force: bool = False) -> None:
    from .common import read_spec, resolve_tracking_uri

    checkpoint, experiment = None, None
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one line per error
    if force and resume is None:
        raise SpecError(["--force goes with --resume RUN_ID"])
    if resume is not None:
        if spec_file is not None or overrides or device is not None:
            raise SpecError(["--resume takes the spec from the checkpoint: "
                             "give no SPEC_FILE, --set or --device"])
        recovery = recovery_base(recovery_dir)
        uri = resolve_tracking_uri(tracking_uri)
        _check_store(uri)
        from ..engine.sweep import expand_members
        from ..spec.io import load_spec
        from ..tracking.resume import find_checkpoint

        checkpoint, experiment = find_checkpoint(uri, resume, force)
        spec = load_spec(checkpoint.spec_toml, f"checkpoint of {resume}")
        members = expand_members(spec, f"checkpoint of {resume}")
    else:
        if spec_file is None:
            raise SpecError(["missing SPEC_FILE (or --resume RUN_ID)"])
        if device is not None:
            overrides = (*overrides, f'train.device="{device}"')
        spec, members = read_spec(spec_file, overrides)
        recovery = recovery_base(recovery_dir)
        uri = resolve_tracking_uri(tracking_uri, spec.tracking.tracking_uri)
    from ..run.helpers import helpers_for

    with helpers_for(spec, members) as helpers:  # their imports overlap the command's own
        _run(spec, members, checkpoint, experiment, spec_file, tracking_uri, uri, resume,
             recovery, memory_gib, force, as_json, quiet, helpers)


def _run(spec: Any, members: Any, checkpoint: Any, experiment: Any, spec_file: str | None,
         tracking_uri: str | None, uri: str, resume: str | None, recovery: Path,
         memory_gib: float | None, force: bool, as_json: bool, quiet: bool,
         helpers: Any) -> None:
    """The run of a spec read (or of a checkpoint found), with its helper processes started."""
    from ..tracking.redact import redact_uri
    from .common import diagnostic_warnings, git_commit

    # grokexp retries and then keeps a recovery folder itself: MLflow's own HTTP retries
    # (7 by default, with exponential backoff) would only delay that by minutes
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    from ..run.budget import check_memory
    from ..run.runner import resolve_device

    check_memory(members, *memory_limit(memory_gib, resolve_device(spec.train.device)))
    if resume is None:
        _check_store(uri)
        for line in diagnostic_warnings(spec_file or "", members):  # once nothing refused it
            click.echo(line, err=True)
    from ..run.runner import run_experiment
    from ..tracking.mlflow_tracker import MlflowTracker
    from .progress import ProgressHook
    from .signals import StopRequest

    tracker = MlflowTracker(uri, experiment or spec.experiment_name, recovery_dir=recovery)
    _imports_done()  # torch, mlflow and the store's own are in
    if checkpoint is not None and resume is not None:  # one writer per run
        from ..tracking.resume import claim_resume

        claim_resume(uri, resume, checkpoint.root_run_id, uuid.uuid4().hex, force,
                     expected_epoch=checkpoint.epoch)
    tags = {"grokexp.spec_file": spec_file or f"resumed:{resume}"}
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    hooks = [] if quiet or as_json else [ProgressHook(sys.stderr, sys.stderr.isatty(),
                                                      len(members))]
    with StopRequest() as stop:
        try:
            result = run_experiment(
                spec, members, tracker, hooks=hooks, tags=tags, resume=checkpoint,
                should_stop=lambda: stop.requested or tracker.failure is not None,
                helpers=helpers)
        except RunInterrupted as err:
            shown = "" if tracking_uri is None else f" --tracking-uri {redact_uri(uri)}"
            if tracker.lost is not None:
                click.echo(_lost_message(tracker, uri, err), err=True)
                sys.exit(1)
            if tracker.failure is not None:
                _recovery_message(tracker, uri, err.root_run_id)
                sys.exit(1)
            name = "SIGINT" if stop.exit_code == 130 else "SIGTERM"
            click.echo(f"interrupted by {name} after epoch {err.epoch}: metrics flushed, "
                       f"checkpoint saved as artifact checkpoint/checkpoint.pt of run "
                       f"{err.root_run_id}, runs ended KILLED", err=True)
            click.echo(f"continue with: grokexp run --resume {err.root_run_id}{shown}",
                       err=True)
            sys.exit(stop.exit_code)
    if tracker.lost is not None:
        click.echo(_lost_message(tracker, uri, None), err=True)
    elif tracker.failure is not None:
        _recovery_message(tracker, uri, None)
    if as_json:
        click.echo(json.dumps(result.to_json()))
    else:
        from .summary import print_summary

        off = {m.index for m in members if not m.spec.metrics.figures}
        print_summary(result, uri, [m.run_id for m in result.members if m.index in off])
    failed = [m for m in result.members if m.status == "FAILED"]
    if failed:
        click.echo(f"error: {len(failed)} of {len(result.members)} member(s) failed:", err=True)
        for m in failed:
            varied = ", ".join(f"{k}={v}" for k, v in m.varied.items())
            click.echo(f"  member {m.index}{f' ({varied})' if varied else ''}: {m.reason} "
                       f"(run {m.run_id})", err=True)
    if failed or tracker.failure is not None:
        sys.exit(1)


def _check_store(uri: str) -> None:
    from ..tracking.store import check_store

    check_store(uri)


def _lost_message(tracker: Any, uri: str, err: RunInterrupted | None) -> str:
    """One line for a store that failed when not even the recovery folder took the rest (a
    full disk): what is lost, and whether the run can be resumed."""
    from ..tracking.checkpoint import CHECKPOINT_ARTIFACT
    from ..tracking.redact import redact_uri

    head = (f"error: tracking store {redact_uri(uri)}: {tracker.failure}; {tracker.lost}; "
            f"{len(tracker.dropped)} write(s) lost")
    if err is None:
        return head + "; the runs' ends may be missing from the store"
    saved = False
    if not any(CHECKPOINT_ARTIFACT in what for what in tracker.dropped):
        try:  # the checkpoint and its tag reached the store: ask it, as a resume will
            tags = tracker.reader().run(err.root_run_id).tags
            saved = tags.get("grokexp.checkpoint_epoch") == str(err.epoch)
        except Exception:  # the store does not answer: no resume to promise
            pass
    if saved:
        return (head + f"; stopped after epoch {err.epoch}, checkpoint saved in the store: "
                f"grokexp run --resume {err.root_run_id}")
    return (head + f"; stopped after epoch {err.epoch}: no checkpoint could be written, "
            "runs the store could not end stay RUNNING")


def _recovery_message(tracker: Any, uri: str, root_run_id: str | None) -> None:
    from ..tracking.redact import redact_uri

    folder = tracker.journal.folder if tracker.journal is not None else None
    click.echo(f"error: tracking store {redact_uri(uri)}: {tracker.failure}", err=True)
    what = "the rest of the history and a checkpoint are" if root_run_id else (
        "what was not logged (history, figures, weights) is")
    click.echo(f"nothing is lost: {what} in {folder}", err=True)
    click.echo(f"once the store works again: grokexp relog {folder} --tracking-uri "
               f"{redact_uri(uri)}", err=True)
    if root_run_id:
        click.echo(f"then continue with: grokexp run --resume {root_run_id} "
                   f"--tracking-uri {redact_uri(uri)}", err=True)


def do_relog(folder: str, tracking_uri: str | None) -> None:
    from ..tracking.recovery import AlreadyRelogged, relog
    from ..tracking.redact import redact_uri
    from .common import resolve_tracking_uri

    path = Path(folder)
    if not path.is_dir():
        raise SpecError([f"{folder}: no such folder"])
    uri = resolve_tracking_uri(tracking_uri)
    _check_store(uri)
    try:
        counts, checkpoints = relog(path, uri)
    except AlreadyRelogged as done:  # exit 0: what the folder held is in the store
        click.echo(str(done))
        return
    click.echo(f"re-logged {path} into {redact_uri(uri)}: "
               + ", ".join(f"{v} {k}" for k, v in counts.items()))
    for run_id in checkpoints:
        click.echo(f"continue with: grokexp run --resume {run_id}"
                   + ("" if tracking_uri is None else f" --tracking-uri {redact_uri(uri)}"))
    if not checkpoints:
        click.echo("nothing to resume: training had finished")
