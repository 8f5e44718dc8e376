"""The shell side of the paper commands: ``grokexp figures`` and ``grokexp reproduce``.

Kept out of commands.py so that it stays a thin table of commands; like it, this is a door in
from the shell (it reads the spec files, writes the gallery, reads the environment).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from ..errors import SpecError
from .common import git_commit, require_store, resolve_tracking_uri, store_label
from .run import memory_limit

__all__ = ["do_figures", "do_reproduce", "suite_option"]

suite_option = click.option(
    "--suite", type=click.Choice(["paper", "beyond"]), default="paper", show_default=True,
    help="paper: the paper's specs and claims (claims.md, index.html); beyond: its "
         "indicators on other models, specs from SPECS_DIR/beyond/ (claims-beyond.md).")


def do_figures(run_ids: Sequence[str], tracking_uri: str | None) -> None:
    """Each run's figures, redrawn and logged to it. Every run is read and drawn before any
    figure is logged, so a mistyped id or a damaged checkpoint changes nothing."""
    from ..figures.render import png_bytes
    from ..paper.recompute import redraw
    from ..tracking.mlflow_tracker import MlflowTracker
    from ..tracking.reader import RunReader

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = resolve_tracking_uri(tracking_uri)
    require_store(uri)
    reader = RunReader.open(uri)
    runs = [reader.run(run_id) for run_id in dict.fromkeys(run_ids)]
    # as PNG bytes (what a run's figure workers send back): a few tens of kB a figure
    drawings = [{path: png_bytes(figure) for path, figure in redraw(reader, run).items()}
                for run in runs]
    trackers: dict[str, MlflowTracker] = {}
    for run, drawn in zip(runs, drawings, strict=True):
        experiment = reader.experiment_name(run)  # the figures go to the run
        if experiment not in trackers:
            trackers[experiment] = MlflowTracker(uri, experiment)
        tracker = trackers[experiment]
        tracker.log_files(run.run_id, drawn)  # one store write a run
        for path in drawn:
            click.echo(f"{run.run_id}: {path}")
        if drawn and (where := artifact_location(run.artifact_uri)) is not None:
            click.echo(f"on disk under {where}")
        if not drawn:
            click.echo(f"{run.run_id}: nothing to draw (no diagnostics were recorded)")


def artifact_location(artifact_uri: str) -> str | None:
    """The folder on this machine that holds a run's artifacts, when the store is local."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(artifact_uri)
    if parts.scheme in ("", "file"):
        return str(Path(unquote(parts.path)).absolute())
    return None


def do_reproduce(out_dir: str, quick: bool, specs_dir: str, only: tuple[str, ...],
                 reuse: bool, tracking_uri: str | None, memory_gib: float | None = None,
                 suite: str = "paper") -> None:
    from ..paper.beyond import BEYOND_SPECS, beyond_markdown, evaluate_beyond
    from ..paper.reproduce import (
        PAPER_SPECS,
        claims_markdown,
        collect_figures,
        evaluate_claims,
        gallery_html,
        outcome_from_store,
        paper_members,
        run_spec,
    )
    from ..run.budget import check_memory
    from ..run.runner import resolve_device
    from ..tracking.mlflow_tracker import MlflowTracker
    from ..tracking.reader import RunReader
    from .progress import ProgressHook

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    beyond = suite == "beyond"
    known, folder = (BEYOND_SPECS, Path(specs_dir) / "beyond") if beyond else (PAPER_SPECS,
                                                                                 Path(specs_dir))
    unknown = sorted(set(only) - set(known))
    if unknown:
        raise SpecError([f"--only {name}: not a {suite} spec ({', '.join(known)})"
                         for name in unknown])
    names = [n for n in known if not only or n in only]
    texts = {}
    for name in [] if reuse else names:
        path = folder / f"{name}.toml"
        try:
            texts[name] = path.read_text(encoding="utf-8")
        except OSError as err:
            raise SpecError([f"{path}: cannot read: {err}"]) from None
    prepared = {name: paper_members(name, text, quick) for name, text in texts.items()}
    for spec, members in prepared.values():  # every spec valid and within memory, first
        check_memory(members, *memory_limit(memory_gib, resolve_device(spec.train.device)))
    uri = resolve_tracking_uri(tracking_uri)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tags = {"mlflow.source.git.commit": commit} if (commit := git_commit()) else {}
    outcomes = []
    stored = None  # --reuse reads the store and writes nothing: no experiment is made
    if reuse:
        require_store(uri)
        stored = RunReader.open(uri)
    for name in names:
        click.echo(f"reproduce: {name}", err=True)
        reader = stored if stored is not None else MlflowTracker(uri, name).reader()
        if reuse:
            found = outcome_from_store(reader, name, quick)
            if found is None:
                click.echo(f"reproduce: {name}: no runs in {store_label(uri)}, skipped",
                           err=True)
                continue
            outcome = found
        else:
            hook = ProgressHook(sys.stderr, sys.stderr.isatty(), 1)
            outcome = run_spec(name, *prepared[name], uri, quick, tags, [hook])
            click.echo(f"reproduce: {name}: {len(outcome.run_ids)} member(s) in "
                       f"{outcome.seconds:.0f} s", err=True)
        if not beyond:
            collect_figures(reader, outcome, out)
        outcomes.append(outcome)
    if beyond:
        groups = {o.name: o.members for o in outcomes}
        table = beyond_markdown(evaluate_beyond(groups), groups, outcomes)
        (out / "claims-beyond.md").write_text(table, encoding="utf-8")
        click.echo(table, nl=False)
        return
    claims = evaluate_claims({o.name: o.members for o in outcomes})
    (out / "index.html").write_text(gallery_html(outcomes, claims, quick), encoding="utf-8")
    table = claims_markdown(claims, outcomes)
    (out / "claims.md").write_text(table, encoding="utf-8")
    click.echo(table, nl=False)
    click.echo(f"gallery: {(out / 'index.html').resolve()}")
