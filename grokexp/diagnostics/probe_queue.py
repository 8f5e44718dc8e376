"""How probes run beside the training: the probe process, the queue, the hand-over.

What a probe measures is ``probes.py``'s. The queue copies a probe's tensors when it is handed
over (``probe_process.sent``) and sends it to one worker process with one intra-op thread,
which it owns (started by ``start`` or the first probe, replaced when found dead, stopped by
``close``), once that process is ready: until then a caller that waits measures the probes
itself. Off the CPU the probes run in place.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch

from ..engine.sweep import Member
from ..engine.workers import no_grad_call
from .probe_process import ProbeProcess, SentWork, run_in_worker, sent
from .probes import ProbeWork, Values

__all__ = ["Probe", "ProbeState", "ProbeQueue", "MAX_IN_FLIGHT"]

MAX_IN_FLIGHT = 16  # then the caller waits: weight copies never pile up behind the process


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

    def __init__(self, background: bool = True, process: ProbeProcess | None = None) -> None:
        """``process``: one started ahead of the queue (by the command, as soon as it has read
        its spec), which the queue then owns; else the queue starts one on :meth:`start`."""
        self.background = background
        self._process = process if process is not None else ProbeProcess()
        self._process.on_ready = self._dispatch
        self._pending: list[Probe] = []
        self._lock = threading.RLock()  # the process's callbacks dispatch from their thread
        self._closed = False  # once closed, a landing probe sends no next one

    def start(self) -> None:
        """Start the probe process now (it would start with the first probe), so that its
        start-up overlaps whatever the caller does before the first evaluation."""
        if self.background:
            self._process.executor()

    def ready(self) -> bool:
        """Whether probes go to the probe process now (else a waiting caller measures them)."""
        return self.background and self._process.ready()

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
        """Send the oldest queued probe to the process, unless one of ours is there or the
        process is not ready yet (started now if there is none: it calls this when ready)."""
        with self._lock:
            if self._closed or any(p.state is ProbeState.SENT for p in self._pending):
                return
            probe = next((p for p in self._pending if p.state is ProbeState.QUEUED), None)
            if probe is None:
                return
            executor = self._process.executor()
            if executor is None or not self._process.ready():
                return
            probe.state = ProbeState.SENT
        assert probe.work is not None
        future = None
        try:
            future = executor.submit(run_in_worker, probe.work)
        except BrokenProcessPool:  # found dead: the next probe starts a successor
            self._process.forget(executor)
        except RuntimeError:  # shut down meanwhile (interpreter exit): leave it here
            pass
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
