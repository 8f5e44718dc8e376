"""What ``grokexp run`` and ``grokexp relog`` do, behind commands.py's options.

Like commands.py this is the shell's side: it reads the environment, files and signals, prints,
and turns outcomes into exit codes (0 done, 1 a member or the store failed, 2 bad input,
130/143 interrupted by SIGINT/SIGTERM).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from ..errors import RunInterrupted, SpecError

__all__ = ["do_run", "do_relog", "memory_limit"]


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
    """Where recovery folders go: the option's folder if writable, else the temp dir."""
    base = Path(option)
    try:
        base.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=base):
            return base
    except OSError:
        return Path(tempfile.gettempdir()) / "grokexp-recovery"


def do_run(spec_file: str | None, overrides: tuple[str, ...], tracking_uri: str | None,
           device: str | None, as_json: bool, quiet: bool, resume: str | None,
           recovery_dir: str, memory_gib: float | None) -> None:
    from ..tracking.redact import redact_uri
    from .common import diagnostic_warnings, git_commit, read_spec, resolve_tracking_uri

    checkpoint, experiment = None, None
    if resume is not None:
        if spec_file is not None or overrides or device is not None:
            raise SpecError(["--resume takes the spec from the checkpoint: "
                             "give no SPEC_FILE, --set or --device"])
        uri = resolve_tracking_uri(tracking_uri)
        _check_store(uri)
        from ..engine.sweep import expand_members
        from ..spec.io import load_spec
        from ..tracking.resume import find_checkpoint

        checkpoint, experiment = find_checkpoint(uri, resume)
        spec = load_spec(checkpoint.spec_toml, f"checkpoint of {resume}")
        members = expand_members(spec, f"checkpoint of {resume}")
    else:
        if spec_file is None:
            raise SpecError(["missing SPEC_FILE (or --resume RUN_ID)"])
        if device is not None:
            overrides = (*overrides, f'train.device="{device}"')
        spec, members = read_spec(spec_file, overrides)
        uri = resolve_tracking_uri(tracking_uri, spec.tracking.tracking_uri)
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

    tracker = MlflowTracker(uri, experiment or spec.experiment_name,
                            recovery_dir=recovery_base(recovery_dir))
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
                should_stop=lambda: stop.requested or tracker.failure is not None)
        except RunInterrupted as err:
            shown = "" if tracking_uri is None else f" --tracking-uri {redact_uri(uri)}"
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
    if tracker.failure is not None:
        _recovery_message(tracker, uri, None)
    if as_json:
        click.echo(json.dumps(result.to_json()))
    else:
        _print_summary(result, uri)
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


def _print_summary(result: Any, uri: str) -> None:
    from .common import store_label, store_location

    click.echo(f"experiment {result.experiment_id} in {store_label(uri)}")
    if (where := store_location(uri)) is not None:
        click.echo(f"on disk: {where}")
    if result.parent_run_id:
        click.echo(f"parent run {result.parent_run_id}")
    for line in summary_table(result.members):
        click.echo(line)


def summary_table(members: Any) -> list[str]:
    """One row per member: the values its sweep varied (one column per key, as members.md
    has them), its grok epochs and final accuracies, status and run id."""
    def show(v: Any) -> str:
        return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    keys = list(dict.fromkeys(k for m in members for k in m.varied))
    leaves = [k.rsplit(".", 1)[-1] for k in keys]
    headers = [leaf if leaves.count(leaf) == 1 else key
               for key, leaf in zip(keys, leaves, strict=True)]
    cells = [["-" if k not in m.varied else str(m.varied[k]) for k in keys] for m in members]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    varied = "".join(f" {h:>{w}}" for h, w in zip(headers, widths, strict=True))
    lines = [f"{'member':>6}{varied} {'train grok':>10} {'test grok':>9} {'delay':>6} "
             f"{'train acc':>9} {'test acc':>8}  status    run"]
    for m, row in zip(members, cells, strict=True):
        values = "".join(f" {v:>{w}}" for v, w in zip(row, widths, strict=True))
        lines.append(f"{m.index:>6}{values} {show(m.train_grok_epoch):>10} "
                     f"{show(m.test_grok_epoch):>9} {show(m.grokking_delay):>6} "
                     f"{show(m.final_train_acc):>9} {show(m.final_test_acc):>8}  "
                     f"{m.status:<9} {m.run_id}")
    return lines


def do_relog(folder: str, tracking_uri: str | None) -> None:
    from ..tracking.recovery import relog
    from ..tracking.redact import redact_uri
    from .common import resolve_tracking_uri

    path = Path(folder)
    if not path.is_dir():
        raise SpecError([f"{folder}: no such folder"])
    uri = resolve_tracking_uri(tracking_uri)
    _check_store(uri)
    counts, checkpoints = relog(path, uri)
    click.echo(f"re-logged {path} into {redact_uri(uri)}: "
               + ", ".join(f"{v} {k}" for k, v in counts.items()))
    for run_id in checkpoints:
        click.echo(f"continue with: grokexp run --resume {run_id}"
                   + ("" if tracking_uri is None else f" --tracking-uri {redact_uri(uri)}"))
    if not checkpoints:
        click.echo("nothing to resume: training had finished")
