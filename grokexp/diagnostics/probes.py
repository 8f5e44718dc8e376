"""Diagnostics on a frozen copy of the weights, computed in another process while training goes on.

A probe is any measurement that needs only the weights of its epoch: the per-evaluation
diagnostics, and above all the dropout probes (MC dropout, the DRC: hundreds of stochastic
passes over the test set). The queue copies the probe's tensors when it is handed over and
sends it to one worker process with one intra-op thread. Not a thread: every one of a
probe's small ops takes the GIL, which each of the training thread's ops must take back
afterwards, and beside a thread of small ops the one-member training ran 30 % slower here.
With one shard (K = 1) the training uses one core and the probe process the other; with
more members it shares the cores with them. Its values are the same as computed in place: a
probe is a module-level function of its inputs (weights, pairs, seeds, epoch), which travel
to the worker by value, and it draws from its own generator. Off the CPU the probes run in
place.

Each member draws its dropout masks from its own generator, seeded from its own seed, the
probe and the epoch: its values do not depend on who trains beside it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..engine.model import Architecture, Population, embedded
from ..engine.seeding import generator_for
from ..engine.sweep import Member
from ..engine.train import TrainData
from ..engine.workers import no_grad_call
from ..figures.render import children_without_main, leave_interrupts_to_the_parent
from ..spec.schema import MetricsSpec
from .metrics.activity import activation_sparsity
from .metrics.distribution import embedding_shape, parameter_stats
from .metrics.dropout import dropout_robustness, mc_dropout_accuracy
from .metrics.embedding import codiagonal_structure, cosine_matrix
from .metrics.progress import fourier_power_share, weight_norm

__all__ = ["Probe", "ProbeQueue", "ProbeWork", "SentWork", "mc_probe", "drc_probe",
           "cadence_probe", "cadence_metrics", "drc_key", "frozen_params", "MAX_IN_FLIGHT"]

Values = dict[str, torch.Tensor]  # name → (K,)
# Probes waiting at most; past that the caller waits, so weight copies cannot pile up when
# training outruns the background process.
MAX_IN_FLIGHT = 16


def drc_key(rate: float) -> str:
    return f"drc_acc_r{rate:g}"


def _generators(seeds: Sequence[int], purpose: str,
                device: torch.device) -> list[torch.Generator]:
    """One generator per member for one probe (``purpose`` names the probe and its epoch,
    e.g. ``mc_dropout:1000``), seeded from that member's own seed."""
    return [generator_for(seed, purpose, device) for seed in seeds]


def frozen_params(population: Population) -> dict[str, torch.Tensor]:
    """A copy of every member's weights that later training steps cannot change (the probe
    queue makes its own: probes handed to it may take the live weights)."""
    return {n: t.detach().clone() for n, t in population.params.items()}


@torch.no_grad()
def cadence_metrics(params: Mapping[str, torch.Tensor], arch: Architecture, data: TrainData,
                    cfg: MetricsSpec) -> dict[str, torch.Tensor]:
    """The per-evaluation diagnostics of every member, each (K,) (the dropout probes aside).

    The embedding's cosine structure, bimodality and peaks are those of the embedding as the
    next layer sees it (after ``model.embedding_activation``), as the paper measures them;
    the layer statistics are those of the parameters themselves.
    """
    tr = data.splits.train_index  # (K, N_train)
    return _cadence_values(params, arch, cfg, data.table.left[tr], data.table.right[tr])


def _cadence_values(params: Mapping[str, torch.Tensor], arch: Architecture, cfg: MetricsSpec,
                    train_left: torch.Tensor, train_right: torch.Tensor) -> Values:
    out: Values = {}
    seen = embedded(params, arch)  # what the first layer reads (after a ReLU, if any)
    if cfg.embedding_cos:
        out["embedding_cos_structure"] = codiagonal_structure(cosine_matrix(seen))
        out["embedding_fourier_share"] = fourier_power_share(seen)
    if cfg.distributions:
        out["weight_norm"] = weight_norm(params)
        out.update(parameter_stats(params, len(arch.hidden)))
        out.update(embedding_shape(seen))
    if cfg.inactive_neurons:
        out.update(activation_sparsity(params, arch, train_left, train_right))
    return out


def _mc_values(params: Mapping[str, torch.Tensor], arch: Architecture, cfg: MetricsSpec,
               seeds: Sequence[int], epoch: int, left: torch.Tensor, right: torch.Tensor,
               labels: torch.Tensor) -> Values:
    gens = _generators(seeds, f"mc_dropout:{epoch}", left.device)
    mean, var = mc_dropout_accuracy(params, arch, left, right, labels, cfg.mc_rate,
                                    cfg.mc_samples, cfg.mc_sites, gens)
    return {"mc_dropout_acc_mean": mean, "mc_dropout_acc_var": var}


def _drc_values(params: Mapping[str, torch.Tensor], arch: Architecture, cfg: MetricsSpec,
                seeds: Sequence[int], epoch: int, left: torch.Tensor, right: torch.Tensor,
                labels: torch.Tensor) -> Values:
    gens = _generators(seeds, f"drc:{epoch}", left.device)
    curve = dropout_robustness(params, arch, left, right, labels, cfg.drc_rates,
                               cfg.drc_samples, cfg.mc_sites, gens)  # (K, R)
    return {drc_key(rate): curve[:, i] for i, rate in enumerate(cfg.drc_rates)}


def _by_value(obj: Any) -> Any:
    """Tensors as copies in numpy arrays (sent as bytes, never through shared memory)."""
    if isinstance(obj, torch.Tensor):
        return _Array(obj.detach().cpu().numpy().copy())
    if isinstance(obj, dict):
        return {k: _by_value(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_by_value(v) for v in obj)
    return obj


def _as_tensors(obj: Any) -> Any:
    if isinstance(obj, _Array):
        return torch.from_numpy(obj.array)
    if isinstance(obj, dict):
        return {k: _as_tensors(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_as_tensors(v) for v in obj)
    return obj


@dataclass(frozen=True)
class _Array:
    array: np.ndarray


class ProbeWork:
    """A probe as work to run: a module-level function and its arguments."""

    def __init__(self, fn: Callable[..., Values], *args: Any):
        self.fn, self.args = fn, args

    def __call__(self) -> Values:
        return self.fn(*self.args)

    def sent(self) -> SentWork:
        """The same work on copies of its tensors, made now: what the probe process gets
        (the copies travel by value), and what training going on cannot change."""
        return SentWork(self.fn, _by_value(self.args))


@dataclass(frozen=True)
class SentWork:
    """:class:`ProbeWork` with its tensors copied into numpy arrays."""

    fn: Callable[..., Values]
    args: tuple[Any, ...]

    def __call__(self) -> Values:
        return self.fn(*_as_tensors(self.args))


def _test_pairs(data: TrainData) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    table, te = data.table, data.splits.test_index  # (K, N_test)
    return table.left[te], table.right[te], table.labels[te]


def _seeds(members: Sequence[Member]) -> list[int]:
    return [m.spec.train.seed for m in members]


def mc_probe(params: Mapping[str, torch.Tensor], arch: Architecture, data: TrainData,
             cfg: MetricsSpec, members: Sequence[Member], epoch: int) -> ProbeWork:
    """MC-dropout mean and variance of the test accuracy at this epoch, as work to run
    (its weights are read when it runs, or copied when the probe queue takes it)."""
    return ProbeWork(_mc_values, dict(params), arch, cfg, _seeds(members), epoch,
                     *_test_pairs(data))


def drc_probe(params: Mapping[str, torch.Tensor], arch: Architecture, data: TrainData,
              cfg: MetricsSpec, members: Sequence[Member], epoch: int) -> ProbeWork:
    """The Dropout Robustness Curve at this epoch, one (K,) value per rate, as work to run."""
    return ProbeWork(_drc_values, dict(params), arch, cfg, _seeds(members), epoch,
                     *_test_pairs(data))


def cadence_probe(params: Mapping[str, torch.Tensor], arch: Architecture, data: TrainData,
                  cfg: MetricsSpec) -> ProbeWork:
    """:func:`cadence_metrics` at this epoch, as work to run."""
    tr = data.splits.train_index
    return ProbeWork(_cadence_values, dict(params), arch, cfg, data.table.left[tr],
                     data.table.right[tr])


def _run_in_worker(work: SentWork) -> dict[str, np.ndarray]:
    """In the probe process: the work's values, as arrays (they travel back by value)."""
    with torch.no_grad():
        return {name: value.numpy() for name, value in work().items()}


def _start_worker() -> None:
    """The probe process: one intra-op thread (the cores are the training's), and Ctrl-C
    left to the parent, which stops the run and still wants the probes in flight."""
    leave_interrupts_to_the_parent()
    torch.set_num_threads(1)


def _ready() -> None:
    """Nothing: submitted once to start the process before the first probe is due."""


_PROCESS: ProcessPoolExecutor | None = None
_PROCESS_LOCK = threading.Lock()


def _probe_process() -> Executor:
    """The probe process, one per Python process: started once (``spawn``, importing torch
    costs about 2 s of CPU) and kept for every later run of the same process."""
    global _PROCESS
    with _PROCESS_LOCK:
        if _PROCESS is None:
            _PROCESS = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=_start_worker)
            with children_without_main():  # the process starts within this submit
                _PROCESS.submit(_ready)
        return _PROCESS


def _forget_broken_process(broken: Executor | None) -> None:
    """Drop the probe process ``broken`` (not a healthy successor started meanwhile)."""
    global _PROCESS
    with _PROCESS_LOCK:
        if broken is not None and _PROCESS is broken:
            _PROCESS.shutdown(wait=False)
            _PROCESS = None


@dataclass
class Probe:
    """A probe in flight: its epoch, the members in the population's order, its values."""

    epoch: int
    members: list[Member]
    values: Future[Any]  # set once, by whoever ran it
    work: SentWork | None = None  # None: measured in place at submission
    state: str = "done"  # "queued" (not started), "sent" (in the process), "here", "done"
    sent_to: Executor | None = None  # the probe process it went to

    def result(self) -> Values:
        """Its values, each (K,); a probe's error surfaces here, in the caller's thread."""
        try:
            values = self.values.result()
        except BrokenProcessPool:  # the worker died (killed, out of memory): compute here
            _forget_broken_process(self.sent_to)
            if self.work is None:
                raise
            values = no_grad_call(self.work)
            done: Future[Any] = Future()
            done.set_result(values)
            self.values = done
        return {name: torch.as_tensor(value) for name, value in values.items()}


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """The caller's share of the backlog on one intra-op thread: the probe process has the
    other core (torch's thread count is the calling thread's own)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class ProbeQueue:
    """Probes run in order in the probe process (CPU) or at once (other devices, or
    ``background=False``).

    The process is handed one probe at a time, so every probe not yet started stays here,
    where a caller that has to wait can take it (the executor would have committed the next
    ones to the process already).
    """

    def __init__(self, background: bool = True) -> None:
        self.background = background
        self._pending: list[Probe] = []
        self._lock = threading.RLock()  # the process's callbacks dispatch from their thread

    def start(self) -> None:
        """Start the probe process now (it would start with the first probe), so that its
        start-up overlaps whatever the caller does before the first evaluation."""
        if self.background:
            _probe_process()

    def submit(self, epoch: int, members: Sequence[Member], device: torch.device,
               work: ProbeWork) -> None:
        if device.type != "cpu" or not self.background:
            done: Future[Values] = Future()
            done.set_result(no_grad_call(work))
            self._pending.append(Probe(epoch, list(members), done))
            return
        probe = Probe(epoch, list(members), Future(), work.sent(), "queued")  # copied now
        with self._lock:
            self._pending.append(probe)
        self._dispatch()

    def _dispatch(self) -> None:
        """Send the oldest queued probe to the process, unless one of ours is there."""
        with self._lock:
            if any(p.state == "sent" for p in self._pending):
                return
            probe = next((p for p in self._pending if p.state == "queued"), None)
            if probe is None:
                return
            probe.state = "sent"
        assert probe.work is not None
        future = None
        for _ in range(2):  # a process found broken is replaced once
            executor = _probe_process()
            try:
                future = executor.submit(_run_in_worker, probe.work)
                break
            except BrokenProcessPool:
                _forget_broken_process(executor)
            except RuntimeError:  # shut down meanwhile (interpreter exit): leave it here
                break
        if future is None:
            with self._lock:
                probe.state = "queued"  # for a waiting caller to measure here
            return
        probe.sent_to = executor
        future.add_done_callback(lambda landed: self._landed(probe, landed))

    def _landed(self, probe: Probe, landed: Future[Any]) -> None:
        """A probe back from the process (on the executor's thread): keep it, send the next."""
        with self._lock:
            if landed.cancelled():  # its process was shut down: a waiting caller measures it
                probe.state = "queued"
                return
            error = landed.exception()
            if error is not None:
                probe.values.set_exception(error)
            else:
                probe.values.set_result(landed.result())
            probe.state = "done"
        if not isinstance(error, BrokenProcessPool):  # else: the caller computes the rest
            self._dispatch()

    def finished(self, wait: bool = False, at_most: int | None = None) -> list[Probe]:
        """The probes done by now, in submission order: all of them when ``wait``, and
        enough that at most ``at_most`` are left in flight.

        Rather than block, the caller computes the newest probes the probe process has not
        started yet itself, so both cores work on the backlog (same work, same values).
        """
        out: list[Probe] = []
        while self._pending and (wait or self._pending[0].values.done() or
                                 (at_most is not None and len(self._pending) > at_most)):
            self._help_while_waiting()
            with self._lock:
                probe = self._pending.pop(0)
            probe.result()  # a probe's error surfaces here, in the caller's thread
            out.append(probe)
        return out

    def _help_while_waiting(self) -> None:
        """Run the newest queued probe here, again and again, as long as the oldest one is
        not done; then the oldest is the process's (or was just run here)."""
        while True:
            with self._lock:
                if self._pending[0].values.done():
                    return
                queued = next((p for p in reversed(self._pending)
                               if p.state == "queued"), None)
                if queued is None:
                    return
                queued.state = "here"
            assert queued.work is not None
            try:
                with _one_thread():
                    values = no_grad_call(queued.work)
                queued.values.set_result(values)
            except Exception as err:  # surfaces at result(), like the process's error
                queued.values.set_exception(err)
            except BaseException:  # Ctrl-C: left queued, so the clean-up measures it
                with self._lock:
                    queued.state = "queued"
                raise
            with self._lock:
                queued.state = "done"

    def members_in_flight(self) -> set[int]:
        """Indices of the members some unfinished probe still measures."""
        return {m.index for probe in self._pending for m in probe.members}
