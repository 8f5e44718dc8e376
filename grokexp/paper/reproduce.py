"""``grokexp reproduce``: run the paper's specs, check its claims, and build a gallery.

The CLI reads the spec files and writes the index; this module runs each spec as one
experiment (three seeds per spec as populations, or one seed and a smaller budget with
``quick``), reads the logged series back from MLflow, evaluates the claims and lays out an
``index.html`` that shows each figure beside the paper's claim and what was measured.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.sweep import Member, expand_members
from ..engine.train import Hook
from ..run.runner import run_experiment
from ..series import MemberSnapshots
from ..spec.io import load_spec
from ..spec.schema import Spec
from ..tracking.mlflow_tracker import MlflowTracker
from ..tracking.reader import RunReader
from .claims import Claim, evaluate_claims
from .recompute import load_record

__all__ = ["PAPER_SPECS", "SpecOutcome", "paper_members", "run_spec", "collect_figures",
           "gallery_html", "claims_markdown", "overrides", "outcome_from_store",
           "evaluate_claims", "runs_table", "FULL_SPLITS"]

PAPER_SPECS = ("baseline", "scale_sweep", "shifted", "shift_sweep", "embedding_shift_sweep",
               "layer_shift", "frozen_embedding", "embedding_relu", "constant_embedding",
               "constant_rest")
FULL_SEEDS, QUICK_EPOCHS = [0, 1, 2], 600
FULL_SPLITS = [0, 1, 2]  # paired with FULL_SEEDS: every member has its own init and split
SECONDS_TAG = "grokexp.reproduce_seconds"  # a spec's wall time, on its top run


@dataclass
class SpecOutcome:
    name: str
    description: str
    parent_run_id: str | None
    run_ids: list[str]
    members: list[tuple[dict[str, Any], MemberSnapshots]] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (caption, relative path)
    seconds: float = 0.0
    commit: str = ""  # the git commit the runs were trained at (their source tag)


def overrides(quick: bool, epochs: int, sweep: Mapping[str, Any] | None = None) -> list[str]:
    """Three members as one population, each with its own init seed and split seed (the
    split matters: Fig. 9's largest shift groks or not by it); a spec whose ``[sweep]`` sets
    ``split_seeds`` keeps its own seeds and splits. Or, for a quick look, the first pair and a
    capped budget."""
    seeds, splits = FULL_SEEDS, FULL_SPLITS
    if sweep and "split_seeds" in sweep:
        seeds, splits = list(sweep["seeds"]), list(sweep["split_seeds"])
    if not quick:
        return [f"sweep.seeds={seeds}", f"sweep.split_seeds={splits}"]
    return [f"sweep.seeds={seeds[:1]}", f"sweep.split_seeds={splits[:1]}",
            f"train.epochs={min(epochs, QUICK_EPOCHS)}", "metrics.mc_dropout_every=100",
            "metrics.drc_epochs=[0, 300, 600]"]


def paper_members(name: str, text: str, quick: bool) -> tuple[Spec, list[Member]]:
    """One paper spec as reproduce trains it (its seed/split pairs, and the quick budget): the
    spec and its members."""
    plain = load_spec(text, f"{name}.toml")
    spec = load_spec(text, f"{name}.toml", overrides(quick, plain.train.epochs, plain.sweep))
    return spec, expand_members(spec, f"{name}.toml")


def run_spec(name: str, spec: Spec, members: Sequence[Member], uri: str, quick: bool,
             tags: Mapping[str, str], hooks: Sequence[Hook] = ()) -> SpecOutcome:
    """Train one paper spec (as :func:`paper_members` reads it) into the store and read its
    members back."""
    start = time.perf_counter()
    tracker = MlflowTracker(uri, spec.experiment_name)
    result = run_experiment(spec, members, tracker, hooks, tags={
        **tags, "grokexp.reproduce": "quick" if quick else "full"})
    outcome = SpecOutcome(name, spec.description, result.parent_run_id,
                          [m.run_id for m in result.members],
                          commit=tags.get("mlflow.source.git.commit", ""))
    reader = tracker.reader()
    splits = {m.index: m.spec.train.split_seed for m in members}
    for member, run_id in zip(result.members, outcome.run_ids, strict=True):
        record = load_record(reader, reader.run(run_id), with_checkpoints=False)
        outcome.members.append((_with_split(member.varied, splits[member.index]), record))
    # to the tenth of a second it is tagged with, so that --reuse's gallery rounds the same
    outcome.seconds = round(time.perf_counter() - start, 1)
    tracker.set_tags(result.parent_run_id or outcome.run_ids[0],
                     {SECONDS_TAG: f"{outcome.seconds:.1f}"})  # for --reuse's gallery
    return outcome


def _shown_runs(outcome: SpecOutcome) -> list[tuple[str, str]]:
    """(label, run id): the parent, the first member, and for α sweeps the largest α."""
    shown = [("sweep", outcome.parent_run_id)] if outcome.parent_run_id else []
    shown.append(("member 0", outcome.run_ids[0]))
    scales = [(float(v.get("init.scale", 0)), i) for i, (v, _) in enumerate(outcome.members)]
    if scales and "init.scale" in outcome.members[0][0]:
        top = max(s for s, _ in scales)
        index = next(i for s, i in scales if s == top)
        shown.append((f"α = {top:g}", outcome.run_ids[index]))
    return shown


def collect_figures(reader: RunReader, outcome: SpecOutcome, out: Path) -> None:
    """Download the PNGs of the shown runs into ``out/<spec>/<label>/``."""
    for label, run_id in _shown_runs(outcome):
        folder = out / outcome.name / label.replace(" ", "_").replace("=", "")
        folder.mkdir(parents=True, exist_ok=True)
        names = sorted(a.path for a in reader.artifacts(run_id, "figures"))
        if names:
            reader.download(run_id, "figures", folder)
        for path in names:
            outcome.figures.append((f"{label}: {Path(path).stem}",
                                    str((folder / path).relative_to(out))))


def outcome_from_store(reader: RunReader, name: str, quick: bool) -> SpecOutcome | None:
    """The latest reproduce run of one paper spec already in the store (no training)."""
    top = reader.latest(name, {"grokexp.reproduce": "quick" if quick else "full"})
    if top is None:
        return None
    children = reader.children(top) if top.role == "sweep" else []
    members = children or [top]
    outcome = SpecOutcome(name, top.params.get("description", ""),
                          top.run_id if children else None, [m.run_id for m in members],
                          commit=top.tags.get("mlflow.source.git.commit", ""),
                          seconds=float(top.tags.get(SECONDS_TAG, 0.0)))
    for member in members:
        split = member.params.get("train.split_seed")
        varied = _with_split(member.varied, int(split)) if split is not None else member.varied
        outcome.members.append((varied, load_record(reader, member, with_checkpoints=False)))
    return outcome


def _with_split(varied: Mapping[str, Any], split_seed: int) -> dict[str, Any]:
    """The member's varied values and its split seed, varied or not (the "splits" column
    counts them)."""
    return {**varied, "train.split_seed": varied.get("train.split_seed", split_seed)}


def _claims_table(claims: list[Claim], escape: Callable[[str], str]) -> list[str]:
    rows = []
    for c in claims:
        rows.append(f"<tr class='{c.verdict.split()[0]}'><td>{escape(c.statement)}</td>"
                    f"<td>{escape(c.figure)}</td><td>{escape(', '.join(c.specs))}</td>"
                    f"<td>{escape(c.measured)}</td><td>{escape(c.splits)}</td>"
                    f"<td>{escape(c.censored)}</td>"
                    f"<td>{escape(c.verdict)}</td></tr>")
    return rows


def gallery_html(outcomes: list[SpecOutcome], claims: list[Claim], quick: bool) -> str:
    """The gallery: the claims table, then each spec's figures with its description."""
    e = html.escape
    mode = "quick (one seed, capped budgets)" if quick else "full (three seeds per spec)"
    parts = ["<!doctype html><meta charset='utf-8'><title>grokexp: reproducing the paper"
             "</title><style>body{font-family:sans-serif;max-width:1200px;margin:auto}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px}"
             "tr.held td:last-child{background:#dfd}tr.not td:last-child{background:#fdd}"
             "img{max-width:560px;margin:4px;border:1px solid #eee}figure{display:inline-block}"
             "</style>",
             "<h1>Tracing the Path to Grokking, reproduced with grokexp</h1>",
             f"<p>Mode: {e(mode)}.</p><h2>Claims</h2><table><tr><th>paper claim</th>"
             "<th>figure</th><th>spec</th><th>measured (range over seeds)</th><th>splits</th>"
             "<th>censored</th>"
             "<th>verdict</th>"
             "</tr>", *_claims_table(claims, e), "</table>"]
    for o in outcomes:
        parts.append(f"<h2 id='{e(o.name)}'>{e(o.name)}</h2><p>{e(o.description)}</p>"
                     f"<p>{len(o.members)} member(s), {o.seconds:.0f} s; runs: "
                     f"{e(', '.join(([o.parent_run_id] if o.parent_run_id else []) + o.run_ids))}"
                     "</p>")
        related = [c for c in claims if o.name in c.specs]
        for c in related:
            parts.append(f"<p><b>{e(c.figure)}</b> {e(c.statement)}: <i>{e(c.measured)}"
                         f"</i> — <b>{e(c.verdict)}</b></p>")
        parts += [f"<figure><img src='{e(path)}' alt='{e(caption)}'><figcaption>"
                  f"{e(caption)}</figcaption></figure>" for caption, path in o.figures]
    return "\n".join(parts) + "\n"


def claims_markdown(claims: list[Claim], outcomes: Sequence[SpecOutcome] = ()) -> str:
    """The claims table; with outcomes, the runs (and commit) each spec's rows come from.

    "splits": how many distinct train/test splits (split seeds) the row's members cover;
    "censored": seeds whose test accuracy never reached their grok threshold within the
    budget (see grokexp.grokking; claim_measures.py says how each check counts them).
    """
    lines = ["| claim (paper) | figure | measured (range over seeds) | splits | censored | "
             "verdict |", "|---|---|---|---|---|---|"]
    lines += [f"| {c.statement} | {c.figure} | {c.measured} | {c.splits} | {c.censored} | "
              f"{c.verdict} |" for c in claims]
    if outcomes:
        lines += ["", *runs_table(outcomes)]
    return "\n".join(lines) + "\n"


def runs_table(outcomes: Sequence[SpecOutcome]) -> list[str]:
    """The runs (and commit) a table's rows come from, and their wall time."""
    lines = ["| spec | run (parent, or the member) | members | seconds | commit |",
             "|---|---|---|---:|---|"]
    lines += [f"| {o.name} | {o.parent_run_id or o.run_ids[0]} | {len(o.run_ids)} | "
              f"{o.seconds:.0f} | {o.commit[:12] or 'unknown'} |" for o in outcomes]
    return lines + [f"| all | | {sum(len(o.run_ids) for o in outcomes)} | "
                    f"{sum(o.seconds for o in outcomes):.0f} | |"]
