"""The probe process, and what travels to it: a probe's work with its tensors copied.

Not a thread: each of a probe's small ops takes the GIL, which the training thread's ops must
take back, and beside a thread of small ops the one-member training ran 30 % slower. Its
values are those computed in place: a probe is a module-level function of inputs that travel
by value. ``probe_queue.py`` decides what is sent and when.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..figures.render import (
    children_without_main,
    collect_only_new_objects,
    leave_interrupts_to_the_parent,
    leave_with_the_parent,
)

if TYPE_CHECKING:  # imported where a probe is made or run: starting the process needs neither
    import numpy as np

    from .probes import ProbeWork, Values

__all__ = ["ProbeProcess", "SentWork", "sent", "run_in_worker", "MAX_FAILED_STARTS"]

MAX_FAILED_STARTS = 3  # processes that died importing, before the probes stay in the run
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Array:
    array: np.ndarray


def _by_value(obj: Any) -> Any:
    """Tensors as copies in numpy arrays (sent as bytes, never through shared memory)."""
    import torch

    if isinstance(obj, torch.Tensor):
        return _Array(obj.detach().cpu().numpy().copy())
    if isinstance(obj, dict):
        return {k: _by_value(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_by_value(v) for v in obj)
    return obj


def _as_tensors(obj: Any) -> Any:  # _by_value's inverse, in the probe process
    import torch

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


def run_in_worker(work: SentWork) -> dict[str, np.ndarray]:
    """In the probe process: the work's values, as arrays (they travel back by value)."""
    import torch

    with torch.no_grad():
        return {name: value.numpy() for name, value in work().items()}


def _start_worker() -> None:
    """The probe process: Ctrl-C left to the parent, which stops the run and still wants the
    probes in flight; its end tied to the parent's; what the probes import (torch, the
    measures) imported now, and kept out of the collector's scans, at its exit too; one
    intra-op thread (the cores are the training's)."""
    leave_interrupts_to_the_parent()
    leave_with_the_parent()
    import torch

    from . import probes  # noqa: F401  (the measures a probe's work calls)

    torch.set_num_threads(1)
    collect_only_new_objects()


def _ready() -> None:  # the first task: done once the process can measure a probe
    pass


class ProbeProcess:
    """One worker process (``spawn``: importing torch there costs about 2 s of CPU), started
    on first use, replaced when it is found dead, stopped by :meth:`close`.

    It is *ready* once its imports are done. ``on_ready`` is called then (on the executor's
    thread): until that moment nothing is sent to it, so a caller that has to wait measures
    the probes itself rather than wait for torch to import. A process closed before it is
    ready is killed, not waited for. After ``MAX_FAILED_STARTS`` processes died before they
    were ready, or once closed, none is started: the probes are measured where they wait.
    """

    def __init__(self, on_ready: Callable[[], None] = lambda: None) -> None:
        self._executor: ProcessPoolExecutor | None = None
        self._started: Future[None] | None = None  # the process's first task, ``_ready``
        self._children: list[multiprocessing.process.BaseProcess] = []
        self._lock = threading.Lock()
        self._closed = False
        self._failed_starts = 0
        self.on_ready = on_ready  # the queue's: it sends the oldest queued probe

    def executor(self) -> Executor | None:
        """The process's executor, started now if there is none; None once closed or given
        up on."""
        with self._lock:
            if self._executor is not None or self._closed:
                return self._executor
            if self._failed_starts >= MAX_FAILED_STARTS:
                return None
            executor = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=_start_worker)
            with children_without_main():  # the process starts within this submit (and no
                before = set(multiprocessing.active_children())  # other of ours meanwhile)
                started = executor.submit(_ready)
                children = [p for p in multiprocessing.active_children() if p not in before]
            self._executor, self._started, self._children = executor, started, children
        started.add_done_callback(lambda done: self._started_done(executor, done))
        return executor

    def _started_done(self, executor: Executor, started: Future[None]) -> None:
        """On the executor's thread (which may hold the executor's own locks: nothing here
        calls the executor)."""
        error = None if started.cancelled() else started.exception()
        if started.cancelled() or error is not None:
            with self._lock:  # died importing: a broken pool shuts itself down
                if self._drop(executor):
                    self._failed_starts += 1
                    if not self._closed:
                        _log.warning("the probe process died before it was ready (%s): its "
                                     "probes are measured in the run's own process", error)
        else:
            self.on_ready()

    def ready(self) -> bool:
        """Whether the process is up and its imports done (one found dead, and forgotten,
        is not)."""
        with self._lock:
            started = self._started
        return (started is not None and started.done() and not started.cancelled()
                and started.exception() is None)

    @property
    def failed_starts(self) -> int:
        """Processes that died before they were ready."""
        with self._lock:
            return self._failed_starts

    def forget(self, broken: Executor | None) -> None:
        """Drop a process found dead (not a successor started meanwhile): the next
        :meth:`executor` starts another. A broken pool has shut itself down; calling it here
        could deadlock, as this may run on its own thread."""
        with self._lock:
            self._drop(broken)

    def _drop(self, broken: Executor | None) -> bool:
        """Forget ``broken`` if it is still this process's executor (the lock held); whether
        it was."""
        if broken is None or self._executor is not broken:
            return False
        self._executor, self._started = None, None
        return True

    def close(self) -> None:
        """Stop the process: after the probe in flight, if any; at once, if it is still
        importing (nothing was sent to it). Its exit is not waited for: it ends on its own
        (``collect_only_new_objects`` keeps that short) while the caller goes on."""
        ready = self.ready()
        with self._lock:
            executor, self._executor, self._started = self._executor, None, None
            children, self._children = self._children, []
            self._closed = True
        if executor is None:
            return
        if not ready:
            for child in children:  # only the ``_ready`` task is there: nothing is lost
                child.kill()
        executor.shutdown(wait=False, cancel_futures=not ready)
