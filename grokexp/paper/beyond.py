"""``grokexp reproduce --suite beyond``: the paper's indicators on models beyond its own.

The paper asks whether its indicators of grokking (MC-dropout variance, the DRC, the
embedding's cosine structure and bimodality, inactive neurons, the delay against the init
scale) carry over to other models. Each row here calls the *same* measure and wording as the
paper's claims table (``claims.CLAIMS``), given a beyond spec's members in the role that
measure reads (``{"baseline": transformer_members}``, ``{"scale_sweep": ...}``): only the
mapping below is new. A row whose indicator has nothing to read on that model (no such series
logged: no ReLU site, no embedding) says "does not apply", never a number.

Beside each model, when its members memorised and generalised, and the Fourier progress
measures (Nanda et al.), when its members logged
them: the onset of the restricted loss falling and of the excluded loss rising, each
relative to the test accuracy's onset (``grokking.onset``; falling = the negated series').
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import grokking
from ..series import MemberSnapshots
from .claim_rules import Members, column, grok_epoch, grokking_delay, is_censored
from .claim_wording import span
from .claims import CLAIMS, splits_covered, verdict_of
from .reproduce import SpecOutcome, runs_table

__all__ = ["BeyondModel", "Indicator", "BeyondRow", "MODELS", "INDICATORS", "BEYOND_SPECS",
           "VERDICTS", "roles", "evaluate_beyond", "grokking_epochs", "fourier_onsets",
           "beyond_markdown"]

Group = Sequence[tuple[Mapping[str, Any], MemberSnapshots]]


@dataclass(frozen=True)
class BeyondModel:
    """A model and task of the suite: its spec (specs/beyond/<spec>.toml) takes the paper's
    baseline's role; its init-scale sweep, if it has one, the scale sweep's."""

    label: str
    spec: str
    scale_spec: str | None = None


@dataclass(frozen=True)
class Indicator:
    """One of the paper's claims as an indicator: its key in ``claims.CLAIMS``, the paper
    spec whose place a beyond spec takes, and what the measure needs logged (a column, or a
    varied key) without which the indicator does not apply."""

    key: str
    short: str
    role: str
    needs: str
    missing: str  # why it would be absent, said in the row


MODELS = (
    BeyondModel("1-layer transformer (Nanda et al.), a + b mod 53", "beyond_transformer",
                "beyond_transformer_scale"),
    BeyondModel("one-hot MLP [200, 200], a + b mod 53", "beyond_onehot_mlp",
                "beyond_onehot_scale"),
    BeyondModel("one-hot MLP [200, 200], s5 (non-abelian)", "beyond_onehot_s5"),
    BeyondModel("1-layer transformer (Nanda et al.), s5 (non-abelian)", "beyond_transformer_s5"),
    BeyondModel("1-layer transformer (Nanda et al.), s5, 40 % of the pairs train",
                "beyond_transformer_s5_40"),
)
BEYOND_SPECS = tuple(dict.fromkeys(
    name for m in MODELS for name in (m.spec, m.scale_spec) if name is not None))

INDICATORS = (
    Indicator("mc_peak", "MC-dropout variance peaks during the test rise", "baseline",
              "mc_dropout_acc_var", "no MC-dropout variance logged (no dropout site probed)"),
    Indicator("drc", "test accuracy robust to dropout < 0.2 once generalised", "baseline",
              "drc_acc_r0", "no dropout robustness curve logged"),
    Indicator("cosine", "codiagonal cosine structure before the test rise", "baseline",
              "embedding_cos_structure", "no codiagonal order: the tokens are not residues mod P"),
    Indicator("bimodal", "embedding bimodal, peaks near ±0.4", "baseline",
              "embedding_bimodality", "no embedding whose bimodality can be tested"),
    Indicator("inactive", "inactive-neuron share falls, then rises", "baseline",
              "zero_activation_frac", "no ReLU site whose zero outputs can be counted"),
    Indicator("scale_delay", "grokking delay grows linearly with init scale α", "scale_sweep",
              "init.scale", "no init-scale sweep of this model in the suite"),
)
# the words a row's verdict may be (``claims.verdict_of`` adds "held in k of n seeds")
VERDICTS = ("held", "not held", "does not apply", "not measured")
FOURIER_FALLS, FOURIER_RISES = "fourier_restricted_loss", "fourier_excluded_loss"

_PAPER = {claim.key: (claim, measure, wording) for claim, measure, wording in CLAIMS}


@dataclass
class BeyondRow:
    model: str
    claim: str
    figure: str
    measured: str = ""
    splits: str = ""
    censored: str = ""
    verdict: str = "not measured"


def roles(model: BeyondModel, groups: Members) -> dict[str, Group]:
    """The members of the model's specs under the names of the paper specs whose places they
    take: what the paper's measure functions read."""
    out: dict[str, Group] = {}
    for role, name in (("baseline", model.spec), ("scale_sweep", model.scale_spec)):
        if name is not None and groups.get(name):
            out[role] = groups[name]
    return out


def _logged(group: Group, needs: str) -> bool:
    return any(needs in varied or column(record, needs)[1] for varied, record in group)


def _row(model: BeyondModel, members: Members, indicator: Indicator) -> BeyondRow:
    paper, measure, wording = _PAPER[indicator.key]
    row = BeyondRow(model.label, indicator.short, paper.figure)
    group = members.get(indicator.role)
    if not group:
        row.measured = (indicator.missing if indicator.role == "scale_sweep"
                        and model.scale_spec is None else "its spec was not run")
        return row
    row.splits = splits_covered(members, [indicator.role])
    row.censored = f"{sum(is_censored(r) for _, r in group)} of {len(group)}"
    if not _logged(group, indicator.needs):
        row.measured, row.verdict = f"{indicator.missing} ({indicator.needs})", "does not apply"
        return row
    measured = measure(members)
    row.measured, row.verdict = wording(measured), verdict_of(measured.flags)
    return row


def evaluate_beyond(groups: Members, models: Sequence[BeyondModel] = MODELS
                    ) -> list[BeyondRow]:
    """One row per model × indicator, from the members of each spec that was run."""
    rows = []
    for model in models:
        members = roles(model, groups)
        rows += [_row(model, members, indicator) for indicator in INDICATORS]
    return rows


def _onset_from_extreme(epochs: Sequence[int], values: Sequence[float],
                        sign: int) -> int | None:
    """The onset (``grokking.onset``) of the rise (``sign`` +1) that follows a series' lowest
    point, or of the fall (-1) that follows its highest; None when it makes no such move.
    Nanda et al.'s excluded loss first falls with the training loss and rises only later,
    so an onset over the whole series would date that first fall."""
    finite = [(e, v) for e, v in zip(epochs, values, strict=True) if v == v]
    if len(finite) < 2:
        return None
    start = min(range(len(finite)), key=lambda i: sign * finite[i][1])
    tail = finite[start:]
    if len(tail) < 2 or sign * (tail[-1][1] - tail[0][1]) <= 0:
        return None
    return grokking.onset([e for e, _ in tail], [v for _, v in tail])


def grokking_epochs(group: Group) -> str:
    """When the model's members memorised and generalised (train and test accuracy reaching
    the spec's threshold) and the delay between, as ranges over members: whether there was
    any grokking for the indicators to foretell."""
    records = [record for _, record in group]  # censored: never reached (the claims' rule)
    return (f"train at {span([grok_epoch(r, 'train_acc') for r in records])}, test at "
            f"{span([grok_epoch(r, 'test_acc') for r in records])}, delay "
            f"{span([grokking_delay(r) for r in records])} epochs ({len(records)} members)")


def fourier_onsets(group: Group) -> str:
    """Onsets of the restricted loss falling (from its highest point) and the excluded loss
    rising (from its lowest), in epochs after the test accuracy's onset (negative: before
    it), as ranges over members; "not logged" when no member has both series."""
    falls: list[float | None] = []
    rises: list[float | None] = []
    for _, record in group:
        restricted, excluded = column(record, FOURIER_FALLS), column(record, FOURIER_RISES)
        if not restricted[1] or not excluded[1]:
            continue
        test = grokking.onset(*column(record, "test_acc"))
        fall = _onset_from_extreme(*restricted, sign=-1)
        rise = _onset_from_extreme(*excluded, sign=+1)
        falls.append(None if test is None or fall is None else fall - test)
        rises.append(None if test is None or rise is None else rise - test)
    if not falls:
        return "not logged"
    return (f"restricted loss falls {span(falls, '{:+.0f}')} epochs, excluded loss rises "
            f"{span(rises, '{:+.0f}')} epochs from the test accuracy's onset ({len(falls)} "
            "members; − is before)")


def beyond_markdown(rows: Sequence[BeyondRow], groups: Members,
                    outcomes: Sequence[SpecOutcome] = (),
                    models: Sequence[BeyondModel] = MODELS) -> str:
    """The beyond table, each model's grok epochs and Fourier measures, and the runs they
    come from."""
    lines = ["| model / task | claim (paper) | measured (range over seeds) | splits | censored "
             "| verdict |", "|---|---|---|---|---|---|"]
    lines += [f"| {r.model} | {r.claim} ({r.figure}) | {r.measured} | {r.splits} | "
              f"{r.censored} | {r.verdict} |" for r in rows]
    lines += ["", "| model / task | grok epochs (≥ threshold) and delay | Fourier progress "
              "measures (onsets against the test accuracy's onset) |", "|---|---|---|"]
    lines += [f"| {m.label} | {grokking_epochs(groups[m.spec])} | "
              f"{fourier_onsets(groups[m.spec])} |" for m in models if groups.get(m.spec)]
    if outcomes:
        lines += ["", *runs_table(outcomes)]
    return "\n".join(lines) + "\n"
