"""What ``grokexp optimize`` does, behind commands.py's options: a worker of an Optuna study.

Like commands.py this is the shell's side: it reads the spec file and the environment, prints
the study's progress and best trials, and turns a tracking store that is still away at the
end into exit 1 (``grokexp relog`` brings back what it missed).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

__all__ = ["do_optimize"]


def do_optimize(spec_file: str, n_trials: int | None, batch: int | None, storage: str | None,
                study_name: str | None, tracking_uri: str | None, out_dir: str,
                overrides: tuple[str, ...], quiet: bool, recovery_dir: str,
                memory_gib: float | None) -> None:
    from ..spec.masking import learn_secret
    from .common import read_spec, resolve_tracking_uri, store_label

    if storage is not None:
        learn_secret(storage)  # a driver's message may quote a piece of its password
    spec, _ = read_spec(spec_file, overrides)
    from ..study.optimize import StudyOptions, check_study_spec, run_study

    opt = check_study_spec(spec, spec_file)  # before any store or study is created
    from ..run.runner import resolve_device
    from ..study.memory import check_study_memory
    from .run import memory_limit

    check_study_memory(spec, spec_file, opt.batch if batch is None else batch,
                       *memory_limit(memory_gib, resolve_device(spec.train.device)))
    import optuna

    from ..study.storage import resolve_storage
    from ..tracking.mlflow_tracker import MlflowTracker
    from .folders import usable_folder
    from .progress import ProgressHook

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    uri = resolve_tracking_uri(tracking_uri, spec.tracking.tracking_uri)
    options = StudyOptions(
        source=spec_file, storage=resolve_storage(storage, uri),
        study_name=study_name or spec.name,
        n_trials=opt.n_trials if n_trials is None else n_trials,
        batch=opt.batch if batch is None else batch,
        out_dir=usable_folder(out_dir, "--out"))  # before anything is created or trained
    from .run import recovery_base

    # as for grokexp run: grokexp retries, then keeps a recovery folder (MLflow's own HTTP
    # retries would only delay that by minutes)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    tracker = MlflowTracker(uri, spec.experiment_name,
                            recovery_dir=recovery_base(recovery_dir))
    hooks = [] if quiet else [ProgressHook(sys.stderr, sys.stderr.isatty(),
                                           options.batch * _seed_count(spec))]
    result = run_study(spec, options, tracker, echo=lambda line: click.echo(line, err=True),
                       hooks=hooks)
    click.echo(f"study {result.study_name}: {result.complete} complete trial(s), "
               f"{len(result.trained_here)} trained by this worker; "
               f"parent run {result.parent_run_id} in {store_label(uri)}")
    click.echo(result.table, nl=False)
    if result.summary:
        click.echo(result.summary)
    if result.best_toml is not None:
        label = "censored trial's spec" if result.best_censored else "best spec"
        click.echo(f"{label}: {result.best_toml}  (grokexp run {result.best_toml})")
    for line in result.store_failure:  # the tracking store was still away at the end
        click.echo(line, err=True)
    if result.store_failure:
        sys.exit(1)


def _seed_count(spec: Any) -> int:
    seeds = spec.optimize.seeds
    return len(seeds) if isinstance(seeds, list) else int(seeds)
