"""Diagnostics on a frozen copy of the weights, computed in the background while training goes on.

A probe is any measurement that needs only the weights of its epoch: the per-evaluation
diagnostics, and above all the dropout probes (MC dropout, the DRC: hundreds of stochastic
passes over the test set). The hook copies the weights and hands the probe to one background
thread with one intra-op thread. With one shard (K = 1)
the training uses one core and the probe runs on the other, nearly for free; with more
members it shares the cores with them. Its values are the same as computed in place: same
weights, same generator (seeded from the member's seed and the epoch), and nothing else
touches them. Off the CPU the probes run in place.

Each member draws its dropout masks from its own generator, seeded from its own seed, the
probe and the epoch: its values do not depend on who trains beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import torch

from ..engine.model import Architecture, Population
from ..engine.seeding import generator_for
from ..engine.sweep import Member
from ..engine.train import TrainData
from ..engine.workers import no_grad_call
from ..spec.schema import MetricsSpec
from .metrics.dropout import dropout_robustness, mc_dropout_accuracy

__all__ = ["Probe", "ProbeQueue", "mc_probe", "drc_probe", "drc_key", "frozen_params",
           "probe_generators", "MAX_IN_FLIGHT"]

Values = dict[str, torch.Tensor]  # name → (K,)
# Probes waiting at most; past that the caller waits, so weight copies cannot pile up when
# training outruns the background thread.
MAX_IN_FLIGHT = 8


def drc_key(rate: float) -> str:
    return f"drc_acc_r{rate:g}"


def probe_generators(members: Sequence[Member], purpose: str,
                     device: torch.device) -> list[torch.Generator]:
    """One generator per member for one probe (``purpose`` names the probe and its epoch,
    e.g. ``mc_dropout:1000``), seeded from that member's own seed."""
    return [generator_for(m.spec.train.seed, purpose, device) for m in members]


def frozen_params(population: Population) -> dict[str, torch.Tensor]:
    """A copy of every member's weights that later training steps cannot change."""
    return {n: t.detach().clone() for n, t in population.params.items()}


def mc_probe(params: Mapping[str, torch.Tensor], arch: Architecture, data: TrainData,
             cfg: MetricsSpec, members: Sequence[Member], epoch: int) -> Callable[[], Values]:
    """MC-dropout mean and variance of the test accuracy at this epoch, as work to run.

    ``params`` must be :func:`frozen_params`: the work runs while training goes on.
    """
    table, te = data.table, data.splits.test_index  # (K, N_test); never changed in place

    def work() -> Values:
        gens = probe_generators(members, f"mc_dropout:{epoch}", te.device)
        mean, var = mc_dropout_accuracy(params, arch, table.left[te], table.right[te],
                                        table.labels[te], cfg.mc_rate, cfg.mc_samples,
                                        cfg.mc_sites, gens)
        return {"mc_dropout_acc_mean": mean, "mc_dropout_acc_var": var}

    return work


def drc_probe(params: Mapping[str, torch.Tensor], arch: Architecture, data: TrainData,
              cfg: MetricsSpec, members: Sequence[Member], epoch: int) -> Callable[[], Values]:
    """The Dropout Robustness Curve at this epoch, one (K,) value per rate, as work to run."""
    table, te = data.table, data.splits.test_index

    def work() -> Values:
        gens = probe_generators(members, f"drc:{epoch}", te.device)
        curve = dropout_robustness(params, arch, table.left[te], table.right[te],
                                   table.labels[te], cfg.drc_rates, cfg.drc_samples,
                                   cfg.mc_sites, gens)  # (K, R)
        return {drc_key(rate): curve[:, i] for i, rate in enumerate(cfg.drc_rates)}

    return work


@dataclass
class Probe:
    """A probe in flight: its epoch, the members in the population's order, its values."""

    epoch: int
    members: list[Member]
    values: Future[Values]
    work: Callable[[], Values] | None = None


class ProbeQueue:
    """Probes run in order on one background thread (CPU) or at once (other devices, or
    ``background=False``)."""

    def __init__(self, background: bool = True) -> None:
        self.background = background
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Probe] = []

    def submit(self, epoch: int, members: Sequence[Member], device: torch.device,
               work: Callable[[], Values]) -> None:
        if device.type != "cpu" or not self.background:
            done: Future[Values] = Future()
            with torch.no_grad():
                done.set_result(work())
            self._pending.append(Probe(epoch, list(members), done))
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="grokexp-probe",
                                            initializer=torch.set_num_threads, initargs=(1,))
        self._pending.append(Probe(epoch, list(members), self._pool.submit(no_grad_call, work),
                                   work))

    def finished(self, wait: bool = False, at_most: int | None = None) -> list[Probe]:
        """The probes done by now, in submission order: all of them when ``wait``, and
        enough that at most ``at_most`` are left in flight.

        Rather than block, the caller computes the newest probes the background thread has
        not started yet itself, so both cores work on the backlog (same work, same values).
        """
        out: list[Probe] = []
        while self._pending and (wait or self._pending[0].values.done() or
                                 (at_most is not None and len(self._pending) > at_most)):
            self._help_while_waiting()
            probe = self._pending.pop(0)
            probe.values.result()  # a probe's error surfaces here, in the caller's thread
            out.append(probe)
        return out

    def _help_while_waiting(self) -> None:
        """Take the newest not-yet-started probe off the background queue and run it here,
        as long as the oldest one is still running."""
        while not self._pending[0].values.done():
            queued = next((p for p in reversed(self._pending[1:])
                           if p.work is not None and p.values.cancel()), None)
            if queued is None:
                return
            work, queued.work = queued.work, None
            done: Future[Values] = Future()
            assert work is not None
            try:
                done.set_result(no_grad_call(work))
            except Exception as err:  # surfaces at result(), like the thread's error
                done.set_exception(err)
            queued.values = done

    def members_in_flight(self) -> set[int]:
        """Indices of the members some unfinished probe still measures."""
        return {m.index for probe in self._pending for m in probe.members}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
