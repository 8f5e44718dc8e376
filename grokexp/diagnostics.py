"""The paper's diagnostics inside the training loop, as a hook.

At every evaluation the hook computes the cadence metrics for all members at once (they are
merged into the evaluation and logged under their names by the tracking hook); at chosen
epochs it keeps the DRC, cosine matrices and embedding values, and at log-spaced epochs it
saves checkpoints. When a member ends, its per-run figures and tables go to its run.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from .figure_sets import RunRecord, drc_csv, run_figures, sweep_figures
from .metrics.activity import activation_sparsity
from .metrics.distribution import embedding_shape, parameter_stats
from .metrics.dropout import dropout_robustness, mc_dropout_accuracy
from .metrics.embedding import codiagonal_structure, cosine_matrix
from .seeding import derived_seed
from .spec import MetricsSpec, Spec
from .sweep import Member
from .tracking import Tracker
from .train import EvalContext, Hook, MemberHistory
from .workers import one_thread

__all__ = ["DiagnosticsHook", "cadence_metrics", "checkpoint_targets", "due", "drc_key",
           "log_sweep_figures"]


def drc_key(rate: float) -> str:
    return f"drc_acc_r{rate:g}"


def checkpoint_targets(epochs: int, every: int, count: int) -> list[int]:
    """0 and ``count - 1`` log-spaced epochs from ``every`` to ``epochs`` (deduplicated)."""
    if count <= 0:
        return []
    if count == 1:
        return [0]
    spaced = np.geomspace(every, max(every, epochs), count - 1)
    return sorted({0, *(int(round(e)) for e in spaced)})


def due(targets: list[int], previous: int, epoch: int) -> list[int]:
    """Targets reached at this evaluation: previous < target ≤ epoch (the first evaluation at
    or after each target, so targets need not be multiples of ``every``)."""
    return [t for t in targets if previous < t <= epoch]


def _probe_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device).manual_seed(derived_seed(seed, f"probe:{epoch}"))


@torch.no_grad()
def cadence_metrics(ctx: EvalContext, cfg: MetricsSpec, mc_due: bool) -> dict[str, torch.Tensor]:
    """The per-evaluation diagnostics of every member, each (K,)."""
    params = {n: t.detach() for n, t in ctx.population.params.items()}
    arch, table, splits = ctx.population.arch, ctx.data.table, ctx.data.splits
    out: dict[str, torch.Tensor] = {}
    with one_thread():  # tiny ops: waking the other intra-op threads costs more than them
        if cfg.embedding_cos:
            out["embedding_cos_structure"] = codiagonal_structure(
                cosine_matrix(params["embedding"]))
        if cfg.distributions:
            out.update(parameter_stats(params, len(arch.hidden)))
            out.update(embedding_shape(params["embedding"]))
        if cfg.inactive_neurons:
            tr = splits.train_index  # (K, N_train)
            out.update(activation_sparsity(params, arch, table.left[tr], table.right[tr]))
    if cfg.mc_dropout and mc_due:
        te = splits.test_index  # (K, N_test)
        gen = _probe_generator(ctx.members[0].spec.train.seed, ctx.epoch, ctx.population.device)
        mean, var = mc_dropout_accuracy(params, arch, table.left[te], table.right[te],
                                        table.labels[te], cfg.mc_rate, cfg.mc_samples,
                                        cfg.mc_sites, gen)
        out["mc_dropout_acc_mean"], out["mc_dropout_acc_var"] = mean, var
    return out


class DiagnosticsHook(Hook):
    """Computes the diagnostics and, with a tracker, logs checkpoints, tables and figures."""

    def __init__(self, tracker: Tracker | None = None,
                 run_ids: Mapping[int, str] | None = None, figures: bool = True):
        self.tracker, self.run_ids, self.figures = tracker, dict(run_ids or {}), figures
        self.records: dict[int, RunRecord] = {}
        self._previous = -1

    def _record(self, member: Member) -> RunRecord:
        if member.index not in self.records:
            cfg = member.spec.metrics
            self.records[member.index] = RunRecord(label=member.label, drc_rates=cfg.drc_rates,
                                                   mc_rate=cfg.mc_rate)
        return self.records[member.index]

    def metrics(self, ctx: EvalContext) -> dict[str, torch.Tensor]:
        cfg = ctx.members[0].spec.metrics  # equal across a population (sweep.shape_key)
        epoch = ctx.epoch
        if epoch == 0:
            self._previous = -1  # a new population starts
        elif self._previous < 0:
            self._previous = epoch - cfg.every  # a resumed population: nothing is overdue
        previous, self._previous = self._previous, epoch
        out = cadence_metrics(ctx, cfg, mc_due=epoch % cfg.mc_dropout_every == 0)
        records = [self._record(m) for m in ctx.members]
        if "mc_dropout_acc_var" in out:
            for name in ("mc_dropout_acc_mean", "mc_dropout_acc_var"):
                for record, value in zip(records, out[name].tolist(), strict=True):
                    epochs, values = record.series.setdefault(name, ([], []))
                    epochs.append(epoch)
                    values.append(value)
        if cfg.drc and due(cfg.drc_epochs, previous, epoch):
            out.update(self._drc(ctx, cfg, records))
        emb = ctx.population.params["embedding"].detach()
        if cfg.embedding_cos and due(cfg.heatmap_epochs, previous, epoch):
            cos = cosine_matrix(emb).cpu().numpy()  # (K, P, P)
            for pos, record in enumerate(records):
                record.cosine[epoch] = cos[pos]
        if cfg.distributions and due(cfg.histogram_epochs, previous, epoch):
            flat = emb.flatten(1).cpu().numpy()  # (K, P·d)
            for pos, record in enumerate(records):
                record.embedding_values[epoch] = flat[pos]
        self._checkpoint(ctx, cfg, previous)
        return out

    def _drc(self, ctx: EvalContext, cfg: MetricsSpec,
             records: list[RunRecord]) -> dict[str, torch.Tensor]:
        params = {n: t.detach() for n, t in ctx.population.params.items()}
        table, te = ctx.data.table, ctx.data.splits.test_index
        gen = _probe_generator(ctx.members[0].spec.train.seed, -1 - ctx.epoch,
                               ctx.population.device)
        curve = dropout_robustness(params, ctx.population.arch, table.left[te],
                                   table.right[te], table.labels[te], cfg.drc_rates,
                                   cfg.drc_samples, cfg.mc_sites, gen)  # (K, R)
        for pos, record in enumerate(records):
            record.drc[ctx.epoch] = curve[pos].tolist()
        return {drc_key(rate): curve[:, i] for i, rate in enumerate(cfg.drc_rates)}

    def _checkpoint(self, ctx: EvalContext, cfg: MetricsSpec, previous: int) -> None:
        if self.tracker is None or cfg.checkpoints == 0:
            return
        epochs = ctx.members[0].spec.train.epochs
        targets = checkpoint_targets(epochs, cfg.every, cfg.checkpoints)
        chosen = [*cfg.drc_epochs, *cfg.heatmap_epochs, *cfg.histogram_epochs]
        if not due(targets, previous, ctx.epoch) and not due(chosen, previous, ctx.epoch):
            return
        for pos, member in enumerate(ctx.members):
            if member.index in self.run_ids:
                self.tracker.log_state(self.run_ids[member.index],
                                       ctx.population.member_state(pos),
                                       f"checkpoints/epoch_{ctx.epoch:06d}.pt")

    def on_member_end(self, member: Member, history: MemberHistory,
                      state: dict[str, torch.Tensor]) -> None:
        record = self._record(member)
        for name, values in history.metrics.items():
            if len(values) == len(history.epochs) and name not in record.series:
                record.series[name] = (list(history.epochs), list(values))
        record.final = {n: t.numpy() for n, t in state.items()}
        run_id = self.run_ids.get(member.index)
        if self.tracker is None or run_id is None:
            return
        if record.drc:
            self.tracker.log_text(run_id, drc_csv(record.drc_rates, record.drc),
                                  "diagnostics/drc.csv")
        if record.cosine:
            buffer = io.StringIO()
            for epoch, matrix in sorted(record.cosine.items()):
                np.savetxt(buffer, matrix, fmt="%.4f", delimiter=",", header=f"epoch {epoch}")
            self.tracker.log_text(run_id, buffer.getvalue(), "diagnostics/cosine.csv")
        if self.figures:
            for path, figure in run_figures(record).items():
                self.tracker.log_figure(run_id, figure, path)
        record.final = {}  # the weights are in the run; keep the series for the sweep


def log_sweep_figures(tracker: Tracker, parent_id: str, spec: Spec,
                      members: Sequence[Member], hook: DiagnosticsHook) -> None:
    """The parent run's figures (Figs. 5, 9, 10) from the members' recorded series."""
    pairs = [(m.varied, hook.records[m.index]) for m in members if m.index in hook.records]
    if not pairs:
        return
    figures = sweep_figures(pairs, spec.metrics.grok_threshold, spec.name)
    for path, figure in figures.items():
        tracker.log_figure(parent_id, figure, path)
