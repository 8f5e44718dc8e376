"""What ``grokexp forecast`` does: train a spec (or take runs from the store), then the table.

The shell's side of the forecast: it reads the members' series from the store (a
:class:`~grokexp.tracking.reader.RunReader`), hands them to ``grokexp.forecast`` and logs the
table and figures to a ``forecast`` run of the same experiment.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from ..errors import GrokexpError, RunInterrupted, SpecError
from ..series import MemberSeries

__all__ = ["do_forecast", "forecast_sources", "read_members"]

FIGURE_INDICATORS = ("embedding_cos_structure", "embedding_fourier_share", "weight_norm",
                     "test_loss", "loss_oscillation", "mc_dropout_acc_var",
                     "embedding_bimodality", "zero_activation_frac", "train_loss")


def forecast_sources(targets: tuple[str, ...], run_ids: tuple[str, ...]
                     ) -> tuple[str | None, tuple[str, ...]]:
    """(SPEC_FILE, run ids) from ``forecast``'s words: after ``--runs`` every bare word is one
    more run id (``--runs A B C``); without it, the one word is the spec file."""
    if run_ids:
        specs = [t for t in targets if t.endswith((".toml", ".json"))]
        if specs:
            raise SpecError([f"{specs[0]}: give a SPEC_FILE or --runs RUN_ID ..., not both"])
        return None, (*run_ids, *targets)
    if len(targets) > 1:
        raise SpecError([f"{targets[1]}: one SPEC_FILE only; to forecast runs in the store "
                         "use --runs RUN_ID RUN_ID ..."])
    return (targets[0] if targets else None), ()


def do_forecast(spec_file: str | None, run_ids: Sequence[str], overrides: tuple[str, ...],
                tracking_uri: str | None, as_json: bool, quiet: bool,
                memory_gib: float | None) -> None:
    from ..forecast.report import analyse, table_text
    from .common import require_store, resolve_tracking_uri, store_label

    if (spec_file is None) == (not run_ids):
        raise SpecError(["give a SPEC_FILE or --runs RUN_ID ..., not both and not neither"])
    if run_ids and overrides:
        raise SpecError(["--set changes a SPEC_FILE; runs in the store are taken as they are"])
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if spec_file is not None:
        uri, run_ids = _train(spec_file, overrides, tracking_uri, as_json or quiet, memory_gib)
    else:
        uri = resolve_tracking_uri(tracking_uri)
        from .run import _check_store

        require_store(uri)
        _check_store(uri)
    trajectories, experiment, frozen = read_members(uri, run_ids)
    if len(trajectories) < 2:
        raise GrokexpError(f"--runs: {len(trajectories)} member run(s) found; a forecast "
                           "needs a population of at least 2")
    report = analyse(trajectories, frozen)
    forecast_run = _log(uri, experiment, run_ids, trajectories, report)
    if as_json:
        click.echo(json.dumps({"forecast_run_id": forecast_run, "source_runs": list(run_ids),
                               **report.to_json()}))
    else:
        click.echo(f"forecast run {forecast_run} in {store_label(uri)} "
                   f"(experiment {experiment})")
        click.echo(table_text(report), nl=False)


def _train(spec_file: str, overrides: tuple[str, ...], tracking_uri: str | None, quiet: bool,
           memory_gib: float | None) -> tuple[str, list[str]]:
    """``grokexp run`` of the spec; the member run ids (or the only run)."""
    from ..run.budget import check_memory
    from ..run.runner import resolve_device, run_experiment
    from ..tracking.mlflow_tracker import MlflowTracker
    from .common import git_commit, read_spec, resolve_tracking_uri
    from .progress import ProgressHook
    from .run import _check_store, memory_limit, recovery_base
    from .signals import StopRequest

    spec, members = read_spec(spec_file, overrides)
    uri = resolve_tracking_uri(tracking_uri, spec.tracking.tracking_uri)
    check_memory(members, *memory_limit(memory_gib, resolve_device(spec.train.device)))
    _check_store(uri)
    tracker = MlflowTracker(uri, spec.experiment_name, recovery_dir=recovery_base(
        "grokexp-recovery"))
    tags = {"grokexp.spec_file": spec_file}
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    hooks = [] if quiet else [ProgressHook(sys.stderr, sys.stderr.isatty(), len(members))]
    with StopRequest() as stop:
        try:
            result = run_experiment(spec, members, tracker, hooks=hooks, tags=tags,
                                    should_stop=lambda: stop.requested)
        except RunInterrupted as err:
            click.echo(f"interrupted after epoch {err.epoch}; continue with: grokexp run "
                       f"--resume {err.root_run_id}, then grokexp forecast --runs "
                       f"{err.root_run_id}", err=True)
            sys.exit(stop.exit_code)
    if tracker.failure is not None:
        raise GrokexpError(f"tracking store: {tracker.failure}; the runs are incomplete "
                           "(see grokexp relog)")
    return uri, [m.run_id for m in result.members]


def read_members(uri: str, run_ids: Sequence[str]
                 ) -> tuple[list[MemberSeries], str, list[bool]]:
    """Every member's series from the store (a sweep's parent stands for its members), the
    (first) experiment's name, and which members are frozen (an init group's ``trainable``
    param false)."""
    from ..forecast.history import TARGET, is_frozen
    from ..tracking.reader import RunReader

    reader = RunReader.open(uri)
    members: list[MemberSeries] = []
    frozen: list[bool] = []
    experiment = ""
    seen: set[str] = set()
    for run_id in run_ids:
        try:
            named = reader.run(run_id)
        except GrokexpError:  # not there, or the store did not answer
            raise SpecError([f"--runs: {run_id}: no such run in the store"]) from None
        for run in reader.members(named):
            if run.run_id in seen:
                continue
            seen.add(run.run_id)
            if not experiment:
                experiment = reader.experiment_name(run)
            if TARGET not in run.metrics or "train.epochs" not in run.params:
                raise SpecError([f"--runs: {run.run_id}: not a grokexp member run "
                                 f"(no {TARGET} history or train.epochs param)"])
            members.append(reader.series(run))
            frozen.append(is_frozen(run.params))
    return members, experiment, frozen


def _log(uri: str, experiment: str, run_ids: Sequence[str], trajectories: Sequence[Any],
         report: Any) -> str:
    """The ``forecast`` run: the table (forecast.md, forecast.json) and three figures."""
    from ..figures.forecast import aligned_curves, forecast_scatter, lead_chart
    from ..forecast.report import aligned, table_text
    from ..tracking.mlflow_tracker import MlflowTracker

    tracker = MlflowTracker(uri, experiment)
    run_id = tracker.start_run(f"{experiment}/forecast", {"forecast.members": len(trajectories)},
                               {"grokexp.role": "forecast",
                                "grokexp.forecast_of": ",".join(run_ids)[:5000]})
    tracker.log_text(run_id, "```\n" + table_text(report) + "```\n", "forecast.md")
    tracker.log_text(run_id, json.dumps(report.to_json(), indent=1), "forecast.json")
    tracker.log_figure(run_id, aligned_curves(aligned(trajectories, FIGURE_INDICATORS),
                                              "indicators aligned at the test rise"),
                       "figures/forecast_aligned.png")
    tracker.log_figure(run_id, lead_chart({r.name: r.leads for r in report.indicators},
                                          "lead before the test rise"),
                       "figures/forecast_leads.png")
    measured = [m.test_grok_epoch for m in report.members]
    methods = {f.method: [m.forecasts.get(f.method) for m in report.members]
               for f in report.forecasts}
    budget = max(t.budget for t in trajectories)
    tracker.log_figure(run_id, forecast_scatter(measured, methods, budget,
                                                "forecast of test_grok_epoch (leave-one-out)"),
                       "figures/forecast_vs_measured.png")
    for f in report.forecasts:
        if f.mdape is not None and math.isfinite(f.mdape):
            at = "" if f.share == report.forecasts[0].share else f"at{f.share * 100:.0f}."
            key = f"mdape.{at}" + "".join(c if c.isalnum() else "_" for c in f.method)
            tracker.log_metrics(run_id, 0, {key: f.mdape})
    tracker.end_run(run_id, "FINISHED")
    return run_id
