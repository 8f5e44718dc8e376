"""The only door in from the shell: reads files, the environment and the terminal.

Heavy imports (torch, mlflow) happen inside the commands that need them, so ``--help`` and
``validate`` answer quickly.
"""

from __future__ import annotations

import atexit
import functools
import gc
import json
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .. import __version__
from ..errors import GrokexpError, SpecError
from .common import diagnostic_warnings, read_spec
from .paper import suite_option
from .signals import interrupts_like_sigint

F = TypeVar("F", bound=Callable[..., Any])


def clean_errors(command: F) -> F:
    """Turn grokexp's own errors into their lines on stderr and the right exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..tracking.redact import redact_text

        try:
            return command(*args, **kwargs)
        except GrokexpError as err:
            # a last mask over every line: a URL's password never reaches the terminal
            for line in redact_text(str(err)).splitlines() or [type(err).__name__]:
                click.echo(line if line.startswith(("error", "grokexp")) or isinstance(
                    err, SpecError) else f"error: {line}", err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                          help="Override a spec key, e.g. --set train.lr=1e-3 (TOML value).")
memory_option = click.option(
    "--memory-limit", "memory_gib", type=click.FloatRange(min=0, min_open=True), default=None,
    metavar="GIB", help="Memory a population may use (default: 80% of free).")
uri_option = click.option("--tracking-uri", default=None,
                          help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, the spec's "
                               "tracking.tracking_uri, or sqlite:///mlruns/mlflow.db).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="grokexp")
def main() -> None:
    """Grokking experiments from declarative specs, tracked in MLflow."""
    # MLflow prints "View run ... at: <URI>" to stdout when a run on an HTTP store ends: the
    # URI with its password, and a line that breaks `grokexp run --json`. grokexp prints its
    # own links (password masked).
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    # Python's last act is to collect every object still alive: after torch and mlflow that
    # takes 1.5-2.5 s of CPU, for memory the process is giving back anyway
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)


@main.command()
@click.argument("spec_file", type=click.Path(dir_okay=False))
@set_option
def validate(spec_file: str, overrides: tuple[str, ...]) -> None:
    """Print the resolved spec, or one line per problem (exit 2)."""
    _validate(spec_file, overrides)


@clean_errors
def _validate(spec_file: str, overrides: tuple[str, ...]) -> None:
    from ..engine.sweep import group_by_shape
    from ..spec.architectures import summary
    from ..spec.io import masked_spec_toml

    spec, members = read_spec(spec_file, overrides)
    for line in diagnostic_warnings(spec_file, members):
        click.echo(line, err=True)
    groups = len(group_by_shape(members))
    click.echo(f"# {spec_file}: valid; {len(members)} member(s) in {groups} population(s)")
    for name in dict.fromkeys(m.spec.model.architecture for m in members):
        click.echo(f"# {summary(name)}")
    click.echo(masked_spec_toml(spec), nl=False)


@main.command()
def schema() -> None:
    """Print the JSON Schema of the spec (for editors)."""
    from ..spec.schema import Spec

    click.echo(json.dumps(Spec.model_json_schema(), indent=2))


@main.command()
@click.argument("spec_file", type=click.Path(dir_okay=False), required=False)
@set_option
@uri_option
@click.option("--device", default=None, help="Override train.device (auto, cpu, cuda, …).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary at the end.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--resume", default=None, metavar="RUN_ID",
              help="Continue an interrupted run from its checkpoint (no SPEC_FILE then).")
@click.option("--recovery-dir", default="grokexp-recovery", show_default=True,
              help="Where history and checkpoint go if the tracking store stops working.")
@memory_option
@click.option("--force", is_flag=True,
              help="With --resume: take over a run left RUNNING by a process that died.")
def run(spec_file: str | None, overrides: tuple[str, ...], tracking_uri: str | None,
        device: str | None, as_json: bool, quiet: bool, resume: str | None,
        recovery_dir: str, memory_gib: float | None, force: bool) -> None:
    """Train the spec's members and log everything to MLflow.

    SIGINT/SIGTERM stop after the current epoch with a checkpoint (exit 130/143);
    --resume RUN_ID continues from it. One process resumes a run: a RUNNING run is
    refused (exit 1) unless --force.
    """
    _run(spec_file, overrides, tracking_uri, device, as_json, quiet, resume, recovery_dir,
         memory_gib, force)


@clean_errors
def _run(*args: Any) -> None:
    from .run import collector_paused_for_imports, do_run

    with collector_paused_for_imports():
        do_run(*args)


@main.command()
@click.argument("folder", type=click.Path(file_okay=False))
@uri_option
def relog(folder: str, tracking_uri: str | None) -> None:
    """Log a recovery folder (written when the store failed mid-run) into the store.

    A folder is replayed once: a second relog says so and writes nothing (exit 0); a
    malformed journal is one line naming its file and line (exit 2), nothing written.
    """
    _relog(folder, tracking_uri)


@clean_errors
def _relog(folder: str, tracking_uri: str | None) -> None:
    from .run import do_relog

    do_relog(folder, tracking_uri)


@main.command()
@click.argument("run_ids", nargs=-1, required=True)
@uri_option
def figures(run_ids: tuple[str, ...], tracking_uri: str | None) -> None:
    """Redraw each run's paper figures from its metrics and checkpoints, and log them to it."""
    _figures(run_ids, tracking_uri)


@clean_errors
def _figures(run_ids: tuple[str, ...], tracking_uri: str | None) -> None:
    from .paper import do_figures

    do_figures(run_ids, tracking_uri)


@main.command()
@click.option("--out", "out_dir", default="gallery", show_default=True,
              type=click.Path(file_okay=False), help="Where the gallery is written.")
@click.option("--quick", is_flag=True, help="One seed and capped budgets (a quick look).")
@click.option("--specs-dir", default="specs", show_default=True,
              type=click.Path(file_okay=False), help="Where the paper specs are.")
@click.option("--only", multiple=True, metavar="NAME", help="Run only these paper specs.")
@click.option("--reuse", is_flag=True,
              help="Train nothing: rebuild the gallery from the latest reproduce runs in "
                   "the store.")
@uri_option
@memory_option
@suite_option
def reproduce(out_dir: str, quick: bool, specs_dir: str, only: tuple[str, ...], reuse: bool,
              tracking_uri: str | None, memory_gib: float | None, suite: str) -> None:
    """Run the paper's specs, check its claims and write a figure gallery (index.html)."""
    _reproduce(out_dir, quick, specs_dir, only, reuse, tracking_uri, memory_gib, suite)


@clean_errors
def _reproduce(*args: Any) -> None:
    from .paper import do_reproduce

    do_reproduce(*args)


@main.command()
@uri_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind; the default keeps the UI on this machine.")
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--experiment", default=None, help="Only link this experiment.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Server worker processes (one is plenty for one user).")
@click.option("--allowed-hosts", default=None, metavar="HOSTS",
              help="Host headers the server answers, comma-separated (MLflow's "
                   "--allowed-hosts, e.g. 'mlflow.lab.org,10.0.0.7:5000'; default: "
                   "localhost and private addresses).")
def ui(tracking_uri: str | None, host: str, port: int, experiment: str | None,
       workers: int, allowed_hosts: str | None) -> None:
    """Start the MLflow UI over the same store and print links to the runs."""
    _ui(tracking_uri, host, port, experiment, workers, allowed_hosts)


@clean_errors
def _ui(*args: Any) -> None:
    from .ui import do_ui

    do_ui(*args)


@main.command()
@click.argument("spec_file", type=click.Path(dir_okay=False))
@click.option("--n-trials", type=click.IntRange(min=0), default=None,
              help="The study's total number of trials, shared by all workers "
                   "(default: optimize.n_trials).")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="Trials asked at once and trained as one population (default: "
                   "optimize.batch).")
@click.option("--storage", default=None,
              help="Optuna storage: an RDB URL (sqlite:///study.db, postgresql://user@host/db) "
                   "or a journal file *.log (default: optuna.log beside the MLflow store).")
@click.option("--study", "study_name", default=None, help="Study name (default: the spec's name).")
@uri_option
@click.option("--out", "out_dir", default=".", show_default=True,
              type=click.Path(file_okay=False), help="Where best.toml is written.")
@set_option
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--recovery-dir", default="grokexp-recovery", show_default=True,
              help="Where tracking writes go while the store fails (grokexp relog).")
@memory_option
def optimize(spec_file: str, n_trials: int | None, batch: int | None, storage: str | None,
             study_name: str | None, tracking_uri: str | None, out_dir: str,
             overrides: tuple[str, ...], quiet: bool, recovery_dir: str,
             memory_gib: float | None) -> None:
    """Search the spec's [optimize] space with Optuna to minimise grokking delay."""
    _optimize(spec_file, n_trials, batch, storage, study_name, tracking_uri, out_dir,
              overrides, quiet, recovery_dir, memory_gib)


@clean_errors
@interrupts_like_sigint
def _optimize(spec_file: str, n_trials: int | None, batch: int | None, storage: str | None,
              study_name: str | None, tracking_uri: str | None, out_dir: str,
              overrides: tuple[str, ...], quiet: bool, recovery_dir: str,
              memory_gib: float | None) -> None:
    from .optimize import do_optimize

    do_optimize(spec_file, n_trials, batch, storage, study_name, tracking_uri, out_dir,
                overrides, quiet, recovery_dir, memory_gib)


@main.command()
@click.argument("targets", nargs=-1, metavar="[SPEC_FILE]")
@click.option("--runs", "run_ids", multiple=True, metavar="RUN_ID",
              help="Forecast runs already in the store (a sweep's parent or member runs): "
                   "--runs A B C, or --runs A --runs B. Without it, SPEC_FILE is trained "
                   "first.")
@set_option
@uri_option
@click.option("--json", "as_json", is_flag=True, help="Print the table as one JSON object.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@memory_option
def forecast(targets: tuple[str, ...], run_ids: tuple[str, ...], overrides: tuple[str, ...],
             tracking_uri: str | None, as_json: bool, quiet: bool,
             memory_gib: float | None) -> None:
    """Which signal warns of grokking, how early, and a forecast of each test grok epoch.

    Trains SPEC_FILE like grokexp run (or reads --runs RUN_ID ... from the store), then
    prints per indicator its lead before the test rise and how well its early value
    separates members that generalise, and logs the table and figures to a forecast run.
    """
    _forecast(targets, run_ids, overrides, tracking_uri, as_json, quiet, memory_gib)


@clean_errors
def _forecast(targets: tuple[str, ...], run_ids: tuple[str, ...], *rest: Any) -> None:
    from .forecast import do_forecast, forecast_sources

    spec_file, run_ids = forecast_sources(targets, run_ids)
    do_forecast(spec_file, run_ids, *rest)


if __name__ == "__main__":  # pragma: no cover
    main()
