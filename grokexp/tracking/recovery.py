"""Replaying a recovery folder (journal.py writes it) into the store: ``grokexp relog``.

The rules of a replay (:func:`relog`): the whole journal is checked before anything is
written (each entry's shape, by journal.py's ``read_entries``; that the store holds its runs;
the status rule of :func:`_check_statuses`); one replay of a folder at a time (a lock on its
journal); the ``RELOGGED`` marker records the journal line a replay reached, and no line is
ever replayed twice (the runs may have been resumed since: a second replay would put an old
checkpoint back and end them again). A replay cut short (the store failed again) records how
far it got, and the next one goes on from there; lines a live process appended after a
replay (an optimize worker whose store is still away) are replayed by the next one. Metrics
already in the store are skipped and a data set input is logged once per run. Only tracking/
talks to mlflow (this module, journal.py, mlflow_tracker.py, reader.py, store.py,
experiment.py).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import GrokexpError, NotFound, SpecError, is_not_found
from .journal import DATASET_SOURCE_TYPE, JOURNAL, Journal, dataset_input, inside, read_entries
from .redact import redact_text, redact_uri

__all__ = ["Journal", "relog", "relogged_at", "AlreadyRelogged", "dataset_input",
           "DATASET_SOURCE_TYPE"]

RELOGGED = "RELOGGED"  # when, and up to which journal line, the folder was replayed


class AlreadyRelogged(GrokexpError):
    """The folder was replayed to its end before: nothing is written again (exit 0)."""

    exit_code = 0


def relogged_at(folder: Path) -> str | None:
    """When the folder was last replayed (its ``RELOGGED`` marker), or None."""
    marker = folder / RELOGGED
    if not marker.is_file():
        return None
    lines = marker.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return (lines[0] if lines else "") or "earlier"


def replayed_to(folder: Path) -> int:
    """The last journal line a replay wrote to the store (0: none); a marker without a line
    (older grokexp) stands for the whole journal."""
    marker = folder / RELOGGED
    if not marker.is_file():
        return 0
    for line in marker.read_text(encoding="utf-8", errors="replace").splitlines()[1:]:
        key, _, value = line.partition(" ")
        if key == "lines" and value.strip().isdigit():
            return int(value)
    return 2**62


def _mark(folder: Path, line: int) -> None:
    """Record that journal lines up to ``line`` are in the store (written whole, then moved)."""
    tmp = folder / f".{RELOGGED}.tmp"
    tmp.write_text(time.strftime("%Y-%m-%d %H:%M:%S\n") + f"lines {line}\n", encoding="utf-8")
    os.replace(tmp, folder / RELOGGED)


def _check_statuses(path: Path, entries: list[tuple[int, dict[str, Any]]],
                    status: dict[str, str]) -> set[str]:
    """Refuse a journal that would take a run where grokexp itself never takes one.

    The rule, from each run's status in the store: an ``end`` entry may end a run that is
    RUNNING (as the store failed with it open, or reopened by an earlier ``reopen`` entry),
    never turn an ended run into another status (a KILLED run never becomes FINISHED by
    itself); a ``reopen`` entry may reopen a KILLED run only (a resume). A run whose status
    in the store already is the one the journal's last ``end`` gives it was replayed before
    (a replay cut short after it): its ``reopen`` and ``end`` entries are skipped. Returns
    those runs.
    """
    final = {e["run_id"]: e["status"] for _, e in entries if e["op"] == "end"}
    done = {run_id for run_id, last in final.items() if status[run_id] == last}
    state = dict(status)
    for number, entry in entries:
        run_id, op = entry["run_id"], entry["op"]
        if run_id in done or op not in ("end", "reopen"):
            continue
        now = state[run_id]
        if op == "reopen" and now not in ("KILLED", "RUNNING"):
            raise SpecError([f"{path}:{number}: reopens run {run_id}, which is {now}; "
                             "grokexp reopens only a KILLED run (to resume it)"])
        if op == "end" and now != "RUNNING":
            raise SpecError([f"{path}:{number}: ends run {run_id} {entry['status']}, but it "
                             f"is {now} already; nothing was written"])
        state[run_id] = "RUNNING" if op == "reopen" else entry["status"]
    return done


@contextlib.contextmanager
def _replay_lock(folder: Path) -> Iterator[None]:
    """One replay of a folder at a time: an exclusive lock on its journal, not waited for."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    fd = os.open(folder / JOURNAL, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise GrokexpError(f"{folder}: another grokexp relog is replaying this folder "
                               "now; nothing was written") from None
        except OSError:  # a file system without locks
            pass
        yield
    finally:
        os.close(fd)  # which also releases the lock


def relog(folder: Path, tracking_uri: str) -> tuple[dict[str, int], list[str]]:
    """Replay a recovery folder into the store.

    Returns counts of what was written and the runs that received a checkpoint (those that
    ``grokexp run --resume`` can continue). Before anything is written: a malformed entry, a
    run the store does not hold, or an entry that breaks the status rule of
    :func:`_check_statuses` raises a :class:`~grokexp.errors.SpecError` naming the journal's
    file and line (exit 2); another replay of the folder under way raises a
    :class:`~grokexp.errors.GrokexpError` (exit 1); a folder replayed to its end already
    raises :class:`AlreadyRelogged` (exit 0: nothing to do, and nothing is written).
    """
    from mlflow.entities import Metric, RunTag

    from .store import open_client

    entries = read_entries(folder)  # no journal: one line, before any lock or store
    with _replay_lock(folder):
        done = replayed_to(folder)
        pending = [(number, entry) for number, entry in entries if number > done]
        when = relogged_at(folder)
        if when is not None and not pending:
            raise AlreadyRelogged(f"{folder} was re-logged already ({when}); nothing written "
                                  "(a second replay would roll its runs back)")
        client = open_client(tracking_uri)
        reached: list[int] = []
        try:
            counts = _replay(folder, pending, client, tracking_uri, Metric, RunTag, reached)
        finally:
            if reached:
                _mark(folder, reached[-1])
    checkpoints = list(dict.fromkeys(e["run_id"] for _, e in entries if e["op"] == "artifact"
                                     and e.get("artifact_dir") == "checkpoint"))
    return counts, checkpoints


def _store_failed(err: Exception, folder: Path, tracking_uri: str) -> GrokexpError:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return GrokexpError(f"tracking store {redact_uri(tracking_uri)}: {redact_text(first)}; "
                        f"{folder} is kept, run grokexp relog again later")


def _replay(folder: Path, entries: list[tuple[int, dict[str, Any]]], client: Any,
            tracking_uri: str, Metric: Any, RunTag: Any, reached: list[int]) -> dict[str, int]:
    """Write ``entries`` to the store in order; ``reached`` gets each line once written."""
    path = folder / JOURNAL
    status: dict[str, str] = {}
    try:
        for number, entry in entries:
            run_id = entry["run_id"]
            if run_id not in status:
                try:
                    status[run_id] = str(client.get_run(run_id).info.status)
                except Exception as err:
                    if is_not_found(err):
                        raise NotFound(f"{path}:{number}: run {run_id} is not in "
                                       f"{redact_uri(tracking_uri)} (another store?); "
                                       "nothing was written") from None
                    raise
    except GrokexpError:
        raise
    except Exception as err:  # the store is still failing
        raise _store_failed(err, folder, tracking_uri) from None
    replayed = _check_statuses(path, entries, status)
    counts = {"metrics": 0, "skipped": 0, "tags": 0, "artifacts": 0, "datasets": 0,
              "runs ended": 0}
    seen: dict[tuple[str, str], set[int]] = {}
    previous = None
    try:
        for number, entry in entries:
            if previous is not None:  # the entry before this one is in the store
                reached.append(previous)
            previous = number
            run_id, op = entry["run_id"], entry["op"]
            if op == "metrics":
                fresh = []
                for key, value, timestamp, step in entry["rows"]:
                    if (run_id, key) not in seen:
                        seen[run_id, key] = {m.step for m in
                                             client.get_metric_history(run_id, key)}
                    if step in seen[run_id, key]:
                        counts["skipped"] += 1
                        continue
                    seen[run_id, key].add(step)
                    fresh.append(Metric(key, float(value), timestamp, step))
                for start in range(0, len(fresh), 1000):
                    client.log_batch(run_id, metrics=fresh[start:start + 1000])
                counts["metrics"] += len(fresh)
            elif op == "tags":
                client.log_batch(run_id, tags=[RunTag(k, v) for k, v in entry["tags"].items()])
                counts["tags"] += len(entry["tags"])
            elif op == "artifact":
                client.log_artifact(run_id, str(inside(folder, entry["file"])),
                                    entry.get("artifact_dir"))
                counts["artifacts"] += 1
            elif op == "dataset":
                client.log_inputs(run_id, [dataset_input(entry["dataset"],
                                                         str(entry.get("context", "training")))])
                counts["datasets"] += 1
            elif run_id in replayed:
                continue  # its end was replayed before: the store has it
            elif op == "end":
                client.set_terminated(run_id, status=entry["status"])
                counts["runs ended"] += 1
            else:  # reopen
                client.update_run(run_id, status="RUNNING")
        if previous is not None:
            reached.append(previous)
    except Exception as err:  # the store is failing again: say so, keep the folder
        raise _store_failed(err, folder, tracking_uri) from None
    return counts
