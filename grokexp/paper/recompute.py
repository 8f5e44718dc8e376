"""Read a tracked run back and redraw its figures from its metrics and checkpoints.

``grokexp figures RUN_ID`` needs no training: the metric series come from MLflow, and the
chosen-epoch data (cosine matrices, embedding histograms, the DRC) are recomputed from the
log-spaced checkpoints, which include every chosen epoch. A sweep's parent run is redrawn
from its children's series. The runs, their series and artifacts are read through a
:class:`~grokexp.tracking.reader.RunReader`.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..diagnostics.metrics.dropout import dropout_robustness
from ..diagnostics.metrics.embedding import cosine_matrix
from ..diagnostics.probes import figure_weights
from ..engine.arch import architecture_of
from ..engine.data import make_splits, pair_table
from ..engine.seeding import generator_for
from ..engine.sweep import member_label
from ..figures.run import ACCURACY_COLUMNS, accuracy_figures
from ..figures.sets import run_figures, sweep_figures
from ..series import MemberSnapshots
from ..spec.io import load_spec
from ..spec.schema import Spec
from ..tracking.checkpoint import DamagedState, load_member_state
from ..tracking.reader import RunReader, TrackedRun

__all__ = ["load_record", "redraw"]


def _spec_of(reader: RunReader, run_id: str, tmp: Path) -> Spec:
    path = reader.download(run_id, "spec.resolved.toml", tmp)
    return load_spec(path.read_text(encoding="utf-8"), f"run {run_id}")


_CHECKPOINT_NAME = re.compile(r"epoch_(\d{1,9})\.pt")


def _checkpoints(reader: RunReader, run_id: str, spec: Spec, tmp: Path
                 ) -> dict[int, dict[str, torch.Tensor]]:
    """Every ``checkpoints/epoch_*.pt`` of a member run, each checked against its spec's
    network; anything else in the folder is refused (exit 2), never skipped or a traceback."""
    out = {}
    for item in reader.artifacts(run_id, "checkpoints"):
        name = Path(item.path).name
        match = _CHECKPOINT_NAME.fullmatch(name)
        if item.is_dir or match is None:
            raise DamagedState(f"run {run_id}: {item.path}: not a checkpoint (the folder "
                               "holds only epoch_NNNNNN.pt files)")
        local = reader.download(run_id, item.path, tmp)
        out[int(match[1])] = load_member_state(local, spec, f"run {run_id}: {item.path}")
    return out


def _at_chosen(targets: list[int], available: list[int]) -> dict[int, int]:
    """Each chosen epoch → the first checkpoint epoch at or after it (as in training)."""
    out = {}
    for target in targets:
        later = [e for e in available if e >= target]
        if later:
            out[target] = min(later)
    return out


def load_record(reader: RunReader, run: TrackedRun,
                with_checkpoints: bool = True) -> MemberSnapshots:
    """One member run: its series from the store, its chosen-epoch data recomputed."""
    run_id = run.run_id
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        spec = _spec_of(reader, run_id, tmp)
        cfg = spec.metrics
        record = MemberSnapshots(reader.series(run), drc_rates=list(cfg.drc_rates),
                                 mc_rate=cfg.mc_rate,
                                 embedding_activation=spec.model.embedding_activation)
        if not with_checkpoints:
            return record
        checkpoints = _checkpoints(reader, run_id, spec, tmp)
        names = {a.path for a in reader.artifacts(run_id, "weights")}
        if "weights/final.pt" in names:
            final = reader.download(run_id, "weights/final.pt", tmp)
            record.final = figure_weights(architecture_of(spec), load_member_state(
                final, spec, f"run {run_id}: weights/final.pt"))
    epochs = sorted(checkpoints)
    arch = architecture_of(spec)

    def seen(epoch: int) -> torch.Tensor | None:  # (1, P, d), as the next layer reads it
        # (None for an architecture without a token embedding: nothing to redraw then)
        return arch.token_embedding({n: t[None] for n, t in checkpoints[epoch].items()})

    if cfg.embedding_cos:
        for epoch in set(_at_chosen(cfg.heatmap_epochs, epochs).values()):
            if (table := seen(epoch)) is not None:
                record.cosine[epoch] = cosine_matrix(table)[0].numpy()
    if cfg.distributions:
        for epoch in set(_at_chosen(cfg.histogram_epochs, epochs).values()):
            if (table := seen(epoch)) is not None:
                record.embedding_values[epoch] = table.flatten().numpy()
    if cfg.drc:
        record.drc = _drc(spec, {e: checkpoints[e] for e in
                                 set(_at_chosen(cfg.drc_epochs, epochs).values())})
    return record


def _drc(spec: Spec, states: dict[int, dict[str, torch.Tensor]]) -> dict[int, list[float]]:
    """The DRC of one member at each checkpoint epoch, on its own test split."""
    if not states:
        return {}
    table = pair_table(spec.task)
    test = make_splits(spec.task, table, [spec.train.split_seed]).test_index  # (1, N_test)
    arch = architecture_of(spec)
    cfg = spec.metrics
    out = {}
    for epoch, state in sorted(states.items()):
        params = {n: t[None] for n, t in state.items()}  # a population of one
        curve = dropout_robustness(params, arch, table.left[test], table.right[test],
                                   table.labels[test], cfg.drc_rates, cfg.drc_samples,
                                   cfg.mc_sites, [generator_for(spec.train.seed, f"drc:{epoch}")])
        out[epoch] = curve[0].tolist()
    return out


def redraw(reader: RunReader, run: TrackedRun) -> dict[str, Any]:
    """All figures of a run (member or sweep parent), recomputed; keyed by artifact path. A
    member's are those its run draws (``metrics.figures``): its accuracy and its diagnostics."""
    if run.role != "sweep":
        record = load_record(reader, run)
        drawn = run_figures(record)
        if set(ACCURACY_COLUMNS) <= set(record.series.columns):  # titled as the run did
            drawn.update(accuracy_figures(record.series, record.series.threshold,
                                          member_label(run.member, run.varied)))
        return drawn
    members = [(child.varied, reader.series(child)) for child in reader.children(run)]
    threshold = float(run.params.get("metrics.grok_threshold", 0.95))
    return sweep_figures(members, threshold, run.label)
