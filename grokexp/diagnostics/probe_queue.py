"""How probes run beside the training: the probe process, the queue, the hand-over.

What a probe measures is ``probes.py``'s. The queue copies a probe's tensors when it is handed
over (:func:`sent`) and sends it to one worker process with one intra-op thread, which it owns
(started by ``start`` or the first probe, replaced when found dead, stopped by ``close``). Not
a thread: each of a probe's small ops takes the GIL, which the training thread's ops must take
back, and beside a thread of small ops the one-member training ran 30 % slower. Its values are
those computed in place: a probe is a module-level function of inputs that travel by value.
Off the CPU the probes run in place.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import torch

from ..engine.sweep import Member
from ..engine.workers import no_grad_call
from ..figures.render import children_without_main, leave_interrupts_to_the_parent
from .probes import ProbeWork, Values

__all__ = ["Probe", "ProbeState", "ProbeProcess", "ProbeQueue", "SentWork", "sent", "MAX_IN_FLIGHT"]

MAX_IN_FLIGHT = 16  # then the caller waits: weight copies never pile up behind the process


@dataclass(frozen=True)
class _Array:
    array: np.ndarray


def _by_value(obj: Any) -> Any:
    """Tensors as copies in numpy arrays (sent as bytes, never through shared memory)."""
    if isinstance(obj, torch.Tensor):
        return _Array(obj.detach().cpu().numpy().copy())
    if isinstance(obj, dict):
        return {k: _by_value(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_by_value(v) for v in obj)
    return obj


def _as_tensors(obj: Any) -> Any:  # _by_value's inverse, in the probe process
    if isinstance(obj, _Array):
        return torch.from_numpy(obj.array)
    if isinstance(obj, dict):
        return {k: _as_tensors(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_as_tensors(v) for v in obj)
    return obj


@dataclass(frozen=True)
class SentWork:
    """:class:`ProbeWork` with its tensors copied into numpy arrays."""

    fn: Callable[..., Values]
    args: tuple[Any, ...]

    def __call__(self) -> Values:
        return self.fn(*_as_tensors(self.args))


def sent(work: ProbeWork) -> SentWork:
    """The same work on copies of its tensors, made now: what the probe process gets (the
    copies travel by value), and what training going on cannot change."""
    return SentWork(work.fn, _by_value(work.args))


def _run_in_worker(work: SentWork) -> dict[str, np.ndarray]:
    """In the probe process: the work's values, as arrays (they travel back by value)."""
    with torch.no_grad():
        return {name: value.numpy() for name, value in work().items()}


def _start_worker() -> None:
    """The probe process: one intra-op thread (the cores are the training's), and Ctrl-C
    left to the parent, which stops the run and still wants the probes in flight."""
    leave_interrupts_to_the_parent()
    torch.set_num_threads(1)


def _ready() -> None:  # submitted once: the process starts before the first probe is due
    pass


class ProbeProcess:
    """One worker process (``spawn``: importing torch there costs about 2 s of CPU), started
    on first use, replaced when it is found dead, stopped by :meth:`close`."""

    def __init__(self) -> None:
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def executor(self) -> Executor:
        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    1, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_worker)
                with children_without_main():  # the process starts within this submit
                    self._executor.submit(_ready)
            return self._executor

    def forget(self, broken: Executor | None) -> None:  # not a successor started meanwhile
        with self._lock:
            if broken is not None and self._executor is broken:
                self._executor.shutdown(wait=False)
                self._executor = None

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown()


class ProbeState(Enum):
    QUEUED = "queued"  # not started: the process or a waiting caller may take it
    SENT = "sent"  # in the probe process
    HERE = "here"  # being measured by a waiting caller
    DONE = "done"


@dataclass
class Probe:
    """A probe in flight: its epoch, the members in the population's order, its values."""

    epoch: int
    members: list[Member]
    values: Future[Any]  # set once, by whoever ran it
    work: SentWork | None = None  # None: measured in place at submission
    state: ProbeState = ProbeState.DONE
    sent_to: Executor | None = None  # the probe process it went to

    def result(self) -> Values:
        """Its values, each (K,); a probe's error surfaces here, in the caller's thread."""
        return {name: torch.as_tensor(value) for name, value in self.values.result().items()}


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:  # a caller's share of the backlog: the process has a core
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
        self._process = ProbeProcess()
        self._pending: list[Probe] = []
        self._lock = threading.RLock()  # the process's callbacks dispatch from their thread
        self._closed = False  # once closed, a landing probe sends no next one

    def start(self) -> None:
        """Start the probe process now (it would start with the first probe), so that its
        start-up overlaps whatever the caller does before the first evaluation."""
        if self.background:
            self._process.executor()

    def close(self) -> None:  # what is still queued stays QUEUED, for a caller to measure
        with self._lock:
            self._closed = True
        self._process.close()

    def submit(self, epoch: int, members: Sequence[Member], device: torch.device,
               work: ProbeWork) -> None:
        if device.type != "cpu" or not self.background:
            done: Future[Values] = Future()
            done.set_result(no_grad_call(work))
            self._pending.append(Probe(epoch, list(members), done))
            return
        probe = Probe(epoch, list(members), Future(), sent(work), ProbeState.QUEUED)
        with self._lock:
            self._pending.append(probe)
        self._dispatch()

    def _dispatch(self) -> None:
        """Send the oldest queued probe to the process, unless one of ours is there."""
        with self._lock:
            if self._closed or any(p.state is ProbeState.SENT for p in self._pending):
                return
            probe = next((p for p in self._pending if p.state is ProbeState.QUEUED), None)
            if probe is None:
                return
            probe.state = ProbeState.SENT
        assert probe.work is not None
        future = None
        for _ in range(2):  # a process found broken is replaced once
            executor = self._process.executor()
            try:
                future = executor.submit(_run_in_worker, probe.work)
                break
            except BrokenProcessPool:
                self._process.forget(executor)
            except RuntimeError:  # shut down meanwhile (interpreter exit): leave it here
                break
        if future is None:
            with self._lock:
                probe.state = ProbeState.QUEUED  # for a waiting caller to measure here
            return
        probe.sent_to = executor
        future.add_done_callback(lambda landed: self._landed(probe, landed))

    def _landed(self, probe: Probe, landed: Future[Any]) -> None:
        """A probe back from the process (on the executor's thread): keep it, send the next."""
        with self._lock:
            if landed.cancelled():  # its process was shut down: a waiting caller measures it
                probe.state = ProbeState.QUEUED
                return
            error = landed.exception()
            if error is not None:
                probe.values.set_exception(error)
            else:
                probe.values.set_result(landed.result())
            probe.state = ProbeState.DONE
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
            self._settle(probe)
            out.append(probe)
        return out

    def _settle(self, probe: Probe) -> None:
        """Wait for the probe's values; if its process died (killed, out of memory),
        measure it here. A probe's error surfaces here, in the caller's thread."""
        try:
            probe.values.result()
        except BrokenProcessPool:
            self._process.forget(probe.sent_to)
            if probe.work is None:
                raise
            done: Future[Any] = Future()
            done.set_result(no_grad_call(probe.work))
            probe.values = done

    def _help_while_waiting(self) -> None:
        """Run the newest queued probe here, again and again, as long as the oldest one is
        not done; then the oldest is the process's (or was just run here)."""
        while True:
            with self._lock:
                if self._pending[0].values.done():
                    return
                queued = next((p for p in reversed(self._pending)
                               if p.state is ProbeState.QUEUED), None)
                if queued is None:
                    return
                queued.state = ProbeState.HERE
            assert queued.work is not None
            try:
                with _one_thread():
                    values = no_grad_call(queued.work)
                queued.values.set_result(values)
            except Exception as err:  # surfaces at result(), like the process's error
                queued.values.set_exception(err)
            except BaseException:  # Ctrl-C: left queued, so the clean-up measures it
                with self._lock:
                    queued.state = ProbeState.QUEUED
                raise
            with self._lock:
                queued.state = ProbeState.DONE

    def members_in_flight(self) -> set[int]:
        """Indices of the members some unfinished probe still measures."""
        return {m.index for probe in self._pending for m in probe.members}
