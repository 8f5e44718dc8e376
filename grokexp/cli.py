"""The only door in from the shell: reads files, the environment and the terminal.

Heavy imports (torch, mlflow) happen inside the commands that need them, so ``--help`` and
``validate`` answer quickly.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .errors import GrokexpError, SpecError

F = TypeVar("F", bound=Callable[..., Any])


def clean_errors(command: F) -> F:
    """Turn grokexp's own errors into their lines on stderr and the right exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except GrokexpError as err:
            for line in str(err).splitlines() or [type(err).__name__]:
                click.echo(line if line.startswith(("error", "grokexp")) or isinstance(
                    err, SpecError) else f"error: {line}", err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def read_spec(path: str, overrides: Sequence[str] = ()) -> tuple[Any, list[Any]]:
    """Read and validate a spec file and its ``--set`` overrides; expand its members."""
    from .spec import load_spec
    from .sweep import expand_members

    file = Path(path)
    if file.suffix not in (".toml", ".json"):
        raise SpecError([f"{path}: expected a .toml or .json file"])
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([f"{path}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError([f"{path}: cannot read: {err}"]) from None
    spec = load_spec(text, path, overrides, default_name=file.stem)
    return spec, expand_members(spec, path)


def resolve_tracking_uri(option: str | None, spec_uri: str | None = None) -> str:
    """``--tracking-uri`` beats MLFLOW_TRACKING_URI beats the spec beats the default."""
    from .tracking import DEFAULT_TRACKING_URI

    return option or os.environ.get("MLFLOW_TRACKING_URI") or spec_uri or DEFAULT_TRACKING_URI


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                          help="Override a spec key, e.g. --set train.lr=1e-3 (TOML value).")
uri_option = click.option("--tracking-uri", default=None,
                          help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, the spec's "
                               "tracking.tracking_uri, or sqlite:///mlruns/mlflow.db).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="grokexp")
def main() -> None:
    """Grokking experiments from declarative specs, tracked in MLflow."""


@main.command()
@click.argument("spec_file", type=click.Path(dir_okay=False))
@set_option
def validate(spec_file: str, overrides: tuple[str, ...]) -> None:
    """Print the resolved spec, or one line per problem (exit 2)."""
    _validate(spec_file, overrides)


@clean_errors
def _validate(spec_file: str, overrides: tuple[str, ...]) -> None:
    from .spec import spec_to_toml
    from .sweep import group_by_shape

    spec, members = read_spec(spec_file, overrides)
    groups = len(group_by_shape(members))
    click.echo(f"# {spec_file}: valid; {len(members)} member(s) in {groups} population(s)")
    click.echo(spec_to_toml(spec), nl=False)


@main.command()
def schema() -> None:
    """Print the JSON Schema of the spec (for editors)."""
    from .spec import Spec

    click.echo(json.dumps(Spec.model_json_schema(), indent=2))


@main.command()
@click.argument("spec_file", type=click.Path(dir_okay=False))
@set_option
@uri_option
@click.option("--device", default=None, help="Override train.device (auto, cpu, cuda, …).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary at the end.")
@click.option("--quiet", is_flag=True, help="No progress output.")
def run(spec_file: str, overrides: tuple[str, ...], tracking_uri: str | None,
        device: str | None, as_json: bool, quiet: bool) -> None:
    """Train the spec's members and log everything to MLflow."""
    _run(spec_file, overrides, tracking_uri, device, as_json, quiet)


@clean_errors
def _run(spec_file: str, overrides: tuple[str, ...], tracking_uri: str | None,
         device: str | None, as_json: bool, quiet: bool) -> None:
    if device is not None:
        overrides = (*overrides, f'train.device="{device}"')
    spec, members = read_spec(spec_file, overrides)
    from .progress import ProgressHook
    from .runner import run_experiment
    from .tracking import MlflowTracker

    uri = resolve_tracking_uri(tracking_uri, spec.tracking.tracking_uri)
    tracker = MlflowTracker(uri, spec.experiment_name)
    tags = {"grokexp.spec_file": spec_file}
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    hooks = [] if quiet or as_json else [ProgressHook(sys.stderr, sys.stderr.isatty(),
                                                          len(members))]
    result = run_experiment(spec, members, tracker, hooks=hooks, tags=tags)
    if as_json:
        click.echo(json.dumps(result.to_json()))
    else:
        _print_summary(result, uri)
    failed = [m.index for m in result.members if m.status == "FAILED"]
    if failed:
        click.echo(f"error: member(s) {failed} failed", err=True)
        sys.exit(1)


def _print_summary(result: Any, uri: str) -> None:
    click.echo(f"experiment {result.experiment_id} in {uri}")
    if result.parent_run_id:
        click.echo(f"parent run {result.parent_run_id}")
    click.echo(f"{'member':>6} {'train grok':>10} {'test grok':>9} {'delay':>6} "
               f"{'train acc':>9} {'test acc':>8}  status    run")
    for m in result.members:
        def show(v: Any) -> str:
            return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))
        click.echo(f"{m.index:>6} {show(m.train_grok_epoch):>10} {show(m.test_grok_epoch):>9} "
                   f"{show(m.grokking_delay):>6} {show(m.final_train_acc):>9} "
                   f"{show(m.final_test_acc):>8}  {m.status:<9} {m.run_id}")


@main.command()
@uri_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind; the default keeps the UI on this machine.")
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--experiment", default=None, help="Only link this experiment.")
def ui(tracking_uri: str | None, host: str, port: int, experiment: str | None) -> None:
    """Start the MLflow UI over the same store and print links to the runs."""
    _ui(tracking_uri, host, port, experiment)


def experiment_links(uri: str, host: str, port: int, experiment: str | None) -> list[str]:
    """Links that open each experiment's runs in the model-training (not GenAI) view."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    links = []
    for exp in client.search_experiments(order_by=["creation_time DESC"]):
        if experiment is not None and exp.name != experiment:
            continue
        if exp.name == "Default" and experiment is None:
            continue
        links.append(f"{exp.name}: http://{shown}:{port}/#/experiments/{exp.experiment_id}"
                     f"/runs?workflowType=machine_learning")
    return links


@clean_errors
def _ui(tracking_uri: str | None, host: str, port: int, experiment: str | None) -> None:
    from .tracking import artifact_root_for

    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        links = experiment_links(uri, host, port, experiment)
    except Exception as err:
        raise GrokexpError(f"tracking store {uri}: {err}") from None
    if experiment is not None and not links:
        raise GrokexpError(f"no experiment named {experiment!r} in {uri}")
    click.echo(f"MLflow UI over {uri} at http://{host}:{port}")
    for link in links or [f"(no runs yet) http://{host}:{port}/"]:
        click.echo(f"  {link}")
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
               "--host", host, "--port", str(port)]
    root = artifact_root_for(uri)
    if root:
        command += ["--default-artifact-root", root]
    sys.stdout.flush()
    sys.exit(subprocess.call(command))


if __name__ == "__main__":  # pragma: no cover
    main()
