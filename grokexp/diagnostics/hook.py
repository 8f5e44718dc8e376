"""The paper's diagnostics inside the training loop, as a hook.

At every evaluation the hook hands its measurements to the probe queue (``probe_queue.py``),
which copies that epoch's weights for each: the per-evaluation diagnostics of all members at
once, MC dropout on its cadence and the DRC at chosen epochs (what each measures:
``probes.py``). They run in the probe process while training goes on; when done, their values
go into the member's snapshots and to ``report`` at their own epoch (the runner's door to the
tracker, the one every measured value takes). At chosen epochs the hook keeps cosine matrices
and embedding values of the architecture's token embedding. A diagnostic the architecture
cannot have (no token embedding, no ReLU layer) is said once in the log and not logged. When
a member ends, its per-run figures are drawn by the figure pool's processes (once its probes
still in flight are in) and logged with its tables, and its key frequencies at the last
Fourier measure are tagged; the training never waits for them.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from ..engine.arch.base import Architecture
from ..engine.sweep import Member
from ..engine.train import EvalContext, History, Hook, MemberSeries, TrainData
from ..figures.render import FigurePool
from ..figures.sets import drc_csv, run_figures
from ..series import MemberSnapshots
from ..tracking.figure_log import FigureLog
from ..tracking.tracker import NullTracker, Tracker
from .metrics.embedding import cosine_matrix
from .probe_process import ProbeProcess
from .probe_queue import MAX_IN_FLIGHT, Probe, ProbeQueue
from .probes import (
    cadence_metrics,
    cadence_probe,
    drc_key,
    drc_probe,
    figure_weights,
    fourier_cannot,
    fourier_probe,
    key_frequency_tag,
    mc_probe,
    not_measured,
)
from .schedule import EvaluationClock, due

__all__ = ["DiagnosticsHook", "cadence_metrics", "Report", "PROBE_GROUPS"]

_log = logging.getLogger(__name__)

PROBE_GROUPS = 4  # dropout probes per population and epoch, at most (see _member_groups)
# (member index, epoch, values): where measured values go (the runner: TrackingHook.log)
Report = Callable[[int, int, Mapping[str, float]], None]


class DiagnosticsHook(Hook):
    """Measures the diagnostics; ``records`` holds what it measured of each member (by index).

    ``report`` receives every probe's values (to log them); ``tracker`` and ``run_ids`` say
    where each member's tables and figures go, drawn by ``figure_log`` (one is made, and
    closed by :meth:`finish`, when not given). ``probe_process``: one already started, which
    the hook's queue takes over.
    """

    def __init__(self, tracker: Tracker | None = None,
                 run_ids: Mapping[int, str] | None = None, figures: bool = True,
                 background_probes: bool = True, figure_log: FigureLog | None = None,
                 report: Report | None = None, probe_process: ProbeProcess | None = None):
        self.tracker, self.run_ids, self.figures = tracker, dict(run_ids or {}), figures
        self.report = report
        self.records: dict[int, MemberSnapshots] = {}
        self._probes = ProbeQueue(background_probes, probe_process)
        self._own_figure_log = figure_log is None
        self._figure_log = figure_log or FigureLog(tracker or NullTracker(),
                                                   FigurePool() if background_probes
                                                   else FigurePool(workers=0))
        self._ended: list[tuple[Member, MemberSeries]] = []  # left, probes in flight
        self._clock = EvaluationClock()
        self._said: set[str] = set()  # what a diagnostic could not measure, said once
        self._arch: Architecture | None = None  # the population's, seen at each evaluation
        self._key_frequencies: dict[int, str] = {}  # member → at its last Fourier measure

    def _record(self, member: Member) -> MemberSnapshots:
        if member.index not in self.records:
            cfg = member.spec.metrics
            self.records[member.index] = MemberSnapshots(
                MemberSeries(member.index, member.label, threshold=cfg.grok_threshold,
                             budget=member.spec.train.epochs, varied=dict(member.varied)),
                drc_rates=cfg.drc_rates, mc_rate=cfg.mc_rate,
                embedding_activation=member.spec.model.embedding_activation)
        return self.records[member.index]

    def on_evaluation(self, ctx: EvalContext, values: dict[str, list[float]]) -> None:
        """Hand this epoch's probes over, keep its chosen-epoch snapshots; take in the probes
        done by now (at most ``MAX_IN_FLIGHT`` stay in flight)."""
        cfg = ctx.members[0].spec.metrics  # equal across a population (sweep.shape_key)
        epoch = ctx.epoch
        previous = self._clock.tick(epoch, cfg.every)
        self._apply(self._probes.finished(at_most=MAX_IN_FLIGHT - 1))
        device = ctx.population.device
        arch, data = ctx.population.arch, ctx.data
        self._arch = arch  # what a member's final weights are drawn as
        cadence = cfg.embedding_cos or cfg.distributions or cfg.inactive_neurons
        mc = cfg.mc_dropout and epoch % cfg.mc_dropout_every == 0
        drc = cfg.drc and bool(due(cfg.drc_epochs, previous, epoch))
        # the queue copies each probe's weights at once (in place: measures at once)
        params = {n: t.detach() for n, t in ctx.population.params.items()}
        if cadence:
            self._probes.submit(epoch, ctx.members, device,
                                cadence_probe(params, arch, data, cfg))
        cannot = fourier_cannot(ctx.members[0].spec.task, arch) if cfg.fourier else None
        if cfg.fourier and cannot is None:
            self._probes.submit(epoch, ctx.members, device,
                                fourier_probe(params, arch, data, cfg))
        for probe, wanted in ((mc_probe, mc), (drc_probe, drc)):
            for rows in self._member_groups(len(ctx.members), device) if wanted else []:
                part = {n: t[rows] for n, t in params.items()}
                keep = torch.arange(rows.start, rows.stop, device=device)
                members = ctx.members[rows]
                self._probes.submit(epoch, members, device, probe(
                    part, arch, TrainData(data.table, data.splits.select(keep)), cfg,
                    members, epoch))
        lines = not_measured(params, arch, cfg, data.table.residues) if cadence else []
        for line in [*lines, *([cannot] if cannot else [])]:
            if line not in self._said:
                self._said.add(line)
                _log.warning(line)
        self._snapshots(ctx, previous)

    def _snapshots(self, ctx: EvalContext, previous: int) -> None:
        """The chosen epochs' cosine matrices and embedding values of the architecture's token
        embedding (as the next layer sees it): none where it has none."""
        cfg, epoch = ctx.members[0].spec.metrics, ctx.epoch
        records = [self._record(m) for m in ctx.members]
        heatmap = cfg.embedding_cos and due(cfg.heatmap_epochs, previous, epoch)
        histogram = cfg.distributions and due(cfg.histogram_epochs, previous, epoch)
        token_embedding = (ctx.population.arch.token_embedding(ctx.population.params)
                           if heatmap or histogram else None)
        if token_embedding is None:
            return
        emb = token_embedding.detach()  # (K, P, d)
        if heatmap:
            cos = cosine_matrix(emb).cpu().numpy()  # (K, P, P)
            for pos, record in enumerate(records):
                record.cosine[epoch] = cos[pos]
        if histogram:
            flat = emb.flatten(1).cpu().clone().numpy()  # (K, P·d), not a view of the weights
            for pos, record in enumerate(records):
                record.embedding_values[epoch] = flat[pos]

    def _member_groups(self, k: int, device: torch.device) -> list[slice]:
        """The dropout probes of a population in up to four groups of its members when they
        run in the background: a member's values depend on its own generator alone, and a
        caller that waits for them (at the end of a short run) then measures the newest
        groups while the probe process measures the oldest, both cores busy to the end."""
        parts = min(PROBE_GROUPS, k) if device.type == "cpu" and self._probes.background else 1
        bounds = [round(i * k / parts) for i in range(parts + 1)]
        return [slice(lo, hi) for lo, hi in zip(bounds, bounds[1:], strict=False)]

    def _apply(self, probes: list[Probe]) -> None:
        """Finished probes into the members' records and to ``report``, at their own epochs."""
        for probe in probes:
            values = {name: v.tolist() for name, v in probe.result().items()}
            for pos, member in enumerate(probe.members):
                record = self._record(member)
                row = {name: vals[pos] for name, vals in values.items()}
                tag = key_frequency_tag(row)  # the last measure's, for the run's tag
                if tag is not None:
                    self._key_frequencies[member.index] = tag
                drc = {drc_key(rate) for rate in record.drc_rates}
                for name, value in row.items():
                    if name not in drc:
                        record.series.add(name, probe.epoch, value)
                if drc_key(record.drc_rates[0]) in row:
                    record.drc[probe.epoch] = [row[drc_key(r)] for r in record.drc_rates]
                if self.report is not None:
                    self.report(member.index, probe.epoch, row)
        self._finish_ended()
        self._figure_log.log_done()

    def finish_probes(self) -> None:
        """Wait for the probes in flight and take them in; the members that have left go to
        the figure pool (the end of a population, or an interruption)."""
        self._apply(self._probes.finished(wait=True))

    def on_member_end(self, member: Member, history: MemberSeries,
                      state: dict[str, torch.Tensor]) -> None:
        """The member's figures wait for its probes still in flight, not the training: they
        are drawn once those are in (at a later evaluation, or when the population ends)."""
        self._record(member).final = (figure_weights(self._arch, state) if self._arch is not None
                                      else {n: t.numpy() for n, t in state.items()})
        self._ended.append((member, history))
        self._apply(self._probes.finished())

    def _finish_ended(self) -> None:
        """Members that have left and whose probes are all in: their tables and figures."""
        busy = self._probes.members_in_flight()
        waiting = []
        for member, history in self._ended:
            if member.index in busy:
                waiting.append((member, history))
            else:
                self._finish_member(member, history)
        self._ended = waiting

    def _finish_member(self, member: Member, history: MemberSeries) -> None:
        record = self._record(member)
        record.series.merge(history)
        run_id = self.run_ids.get(member.index)
        if self.tracker is None or run_id is None:
            return  # nothing to log to: the record keeps the final weights for the caller
        if member.index in self._key_frequencies:
            self.tracker.set_tags(run_id, {"fourier_key_frequencies":
                                           self._key_frequencies.pop(member.index)})
        tables = {}
        if record.drc:
            tables["diagnostics/drc.csv"] = drc_csv(record.drc_rates, record.drc)
        if record.cosine:
            buffer = io.StringIO()
            for epoch, matrix in sorted(record.cosine.items()):
                np.savetxt(buffer, matrix, fmt="%.4f", delimiter=",",
                           header=f"epoch {epoch}")
            tables["diagnostics/cosine.csv"] = buffer.getvalue()
        files = {path: text.encode("utf-8") for path, text in tables.items()}
        if self.figures and member.spec.metrics.figures:
            parts = max(1, self._figure_log.pool.workers)  # a run's figures on every worker
            drawn = replace(record)  # a copy: the record itself goes on without its weights
            for part in range(parts):
                self._figure_log.submit(run_id, run_figures, drawn, part, parts,
                                        extra=files if part == 0 else None)
        else:
            self.tracker.log_files(run_id, files)
        record.final = {}  # the weights are in the run; keep the series for the sweep

    def sweep_series(self, members: Sequence[Member]) -> list[tuple[dict[str, Any],
                                                                      MemberSeries]]:
        """(varied values, series) of each of these members measured here: what the parent
        run's figures (Figs. 5, 9, 10) are drawn from."""
        return [(m.varied, self.records[m.index].series) for m in members
                if m.index in self.records]

    def on_train_end(self, history: History) -> None:
        self.finish_probes()

    def finish(self) -> None:
        """The end of the command (or an interruption): every probe in and reported, the
        probe process stopped (and the figures logged, when the figure log is the hook's)."""
        try:
            self.finish_probes()
        finally:
            self._probes.close()
            if self._own_figure_log:
                self._figure_log.finish()
