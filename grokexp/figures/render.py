"""Figures drawn off the training thread: a pool of worker processes turns data into PNG bytes.

Drawing a member's figures costs about as much CPU as a few hundred of its training epochs,
and matplotlib holds the GIL while it lays out text, so a thread would slow the training
beside it. A job is a module-level function of plain data (MemberSnapshots, a MemberSeries) that
returns ``{artifact path: Figure}``; the worker draws each Figure to PNG bytes and sends the
bytes back, and the caller logs them. Workers start on the first job (or ahead of it, on
``start``), by ``spawn`` (a forked child of a process with running torch threads could
deadlock), without the caller's main module, import matplotlib and numpy but never torch,
and leave Ctrl-C to the parent.
``workers=0`` draws in the calling process instead.

This module itself imports no matplotlib (only ``draw`` and the workers do): the probe
process takes its process helpers from here and never draws.
"""

from __future__ import annotations

import contextlib
import gc
import io
import multiprocessing
import multiprocessing.connection
import multiprocessing.spawn
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["FigurePool", "FigureJob", "png_bytes", "draw", "children_without_main",
           "leave_interrupts_to_the_parent", "leave_with_the_parent", "collect_only_new_objects",
           "MAX_WORKERS", "DRAWING_RC", "PNG_COMPRESS_LEVEL"]

FigureJob = Callable[..., Mapping[str, "Figure"]]  # plain data in, {artifact path: Figure} out
MAX_WORKERS = 2  # figure processes at most: each holds matplotlib (about 80 MB)
# Titles at the top of their axes, where matplotlib's automatic placement puts them when no
# tick label or axis label sits above an axes (none of ours has one): without it every draw
# measures each axes' tight box to place its title, about a tenth of a figure's drawing.
# The PNG bytes are the same (tests/figures/test_render.py).
DRAWING_RC: dict[Any, Any] = {"axes.titley": 1.0}
# zlib's fastest level for the PNGs: the same pixels as at Pillow's default (6), in somewhat
# larger files, for less of a figure's CPU (benchmarks/figure_cost.py prints both)
PNG_COMPRESS_LEVEL = 1


def png_bytes(figure: Figure) -> bytes:
    """The figure as a PNG, at its own size and dpi (what ``savefig`` to a file writes, but
    compressed at :data:`PNG_COMPRESS_LEVEL`)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})
    return buffer.getvalue()


def draw(job: FigureJob, *args: Any) -> dict[str, bytes]:
    """Run one job and draw what it returns: {artifact path: PNG bytes} (in a worker),
    the axes made under ``DRAWING_RC``."""
    import matplotlib

    with matplotlib.rc_context(DRAWING_RC):
        return {path: png_bytes(figure) for path, figure in job(*args).items()}


def _nothing() -> dict[str, Figure]:
    return {}


def leave_interrupts_to_the_parent() -> None:
    """Ctrl-C reaches the whole process group; the parent stops the run and still wants the
    figures (and probes) of the members that had finished, so a worker goes on with them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def leave_with_the_parent() -> None:
    """End this worker when the process that started it is gone without stopping it (killed
    before the run could: SIGKILL, or SIGTERM before the command handles it). A pool's worker
    would otherwise wait on its task queue forever, holding that queue's write end itself.
    The parent's sentinel turns readable when it dies; a daemon thread waits for that."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        signal.raise_signal(getattr(signal, "SIGKILL", signal.SIGTERM))

    threading.Thread(target=watch, name="grokexp-parent-watch", daemon=True).start()


def collect_only_new_objects() -> None:
    """Keep every object made so far (the imported modules, mostly) out of the cyclic
    garbage collector's scans, in this process's work and at its exit.

    A spawned worker ends like any Python process, by collecting all it holds: after
    importing matplotlib that took 0.4 s of CPU here, after torch 1.5 s, and the parent
    shutting its workers down waits for it. ``gc.freeze`` skips those objects; the memory
    goes back with the process. For a worker, after its imports."""
    gc.freeze()


def _start_worker() -> None:
    """A figure process: Ctrl-C left to the parent, its end tied to the parent's, and
    matplotlib's drawing imported now, before the imports are kept out of the collector's
    scans."""
    leave_interrupts_to_the_parent()
    leave_with_the_parent()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.backends.backend_agg
    import matplotlib.figure  # noqa: F401

    collect_only_new_objects()
    # a figure is thousands of small objects, nearly all freed as soon as it is drawn: at
    # the default threshold (700) a member's figures set off about 20 young collections
    gc.set_threshold(20_000, *gc.get_threshold()[1:])


_WITHOUT_MAIN = threading.Lock()  # one thread at a time patches and restores


@contextlib.contextmanager
def children_without_main() -> Iterator[None]:
    """Workers started here do not import the caller's ``__main__``.

    A spawned child normally re-imports the parent's main module, so a user's script that
    calls grokexp without an ``if __name__ == "__main__":`` guard would start its
    experiment again in every worker. The jobs are grokexp's own functions, so the workers
    need nothing of ``__main__``: the keys that ask for it are left out while workers start.

    multiprocessing has no public switch for this (``spawn``, ``forkserver`` and
    ``set_executable`` all send the main module's name or path to the child), so this
    wraps the private ``multiprocessing.spawn.get_preparation_data`` that builds what the
    child is sent, while the lock is held.
    """
    with _WITHOUT_MAIN:
        # private API: no public way to start a child without __main__ (see above)
        original = multiprocessing.spawn.get_preparation_data

        def without_main(name: str) -> dict[str, Any]:
            data = original(name)
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
            return data

        # private API, as above: replaced while the workers start
        multiprocessing.spawn.get_preparation_data = without_main
        try:
            yield
        finally:  # private API, as above: put back
            multiprocessing.spawn.get_preparation_data = original


class FigurePool:
    """Jobs drawn by up to ``workers`` processes, in parallel with the caller."""

    def __init__(self, workers: int = MAX_WORKERS):
        self.workers = workers
        self._executor: Executor | None = None

    def start(self) -> None:
        """Start the workers now rather than with the first job: their start-up (spawn,
        importing matplotlib) then overlaps the training instead of delaying its figures."""
        for _ in range(self.workers):  # each submit starts at most one worker
            self.submit(_nothing)

    def submit(self, job: FigureJob, *args: Any) -> Future[dict[str, bytes]]:
        """Draw ``job(*args)``; the arguments are pickled, so pass copies of anything the
        caller goes on changing."""
        if self.workers <= 0:
            done: Future[dict[str, bytes]] = Future()
            try:
                done.set_result(draw(job, *args))
            except Exception as err:  # surfaces at result(), like a worker's error
                done.set_exception(err)
            return done
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker)
        with children_without_main():  # workers start on demand, within submit
            return self._executor.submit(draw, job, *args)

    def close(self) -> None:
        """Stop the workers (after the jobs already submitted)."""
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None
