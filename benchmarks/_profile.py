"""Where a grokexp command's time goes: one run in a fresh interpreter, profiled.

``profile_command`` runs ``python -X importtime -m grokexp ...`` with the command under
cProfile (wall clock) in that interpreter's main thread, and reads back:

- the wall seconds from the interpreter's start to the command's return, and from there to
  the process's end (its exit: atexit handlers, the workers' shutdown, the last collection);
- the CPU seconds of the main process and of the processes it started (the probe process,
  the figure workers), from the kernel's accounting;
- the imports' own seconds by top-level package (``-X importtime``'s self times);
- the call tree of the main thread below the command, cut at ``min_s``, imports lumped.

cProfile slows Python code (imports above all) by a third or more: the tree's seconds add up
to more than an unprofiled run's wall; read it for where the time goes, not for totals.
"""

from __future__ import annotations

import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# runs in the profiled interpreter: argv = [output stem, command words...]
PROFILED = r"""
import cProfile, json, resource, sys, time
stem, words = sys.argv[1], sys.argv[2:]
sys._xoptions.pop("importtime", None)  # only this process's imports: not its children's
profile = cProfile.Profile()
profile.enable()
from grokexp.cli import main
try:
    main(words, prog_name="grokexp", standalone_mode=False)
finally:
    profile.disable()
    returned = time.perf_counter()
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    profile.dump_stats(stem + ".prof")
    with open(stem + ".json", "w") as out:
        json.dump({"returned": returned, "cpu": cpu.ru_utime + cpu.ru_stime,
                   "dumped": time.perf_counter()}, out)
"""

IMPORT_MACHINERY = ("<frozen importlib", "{built-in method builtins.__import__}",
                    "{built-in method builtins.exec}", "<frozen zipimport")


@dataclass
class Profiled:
    """One profiled run of a command."""

    wall_s: float  # interpreter start to process end
    command_s: float  # interpreter start to the command's return
    exit_s: float  # the command's return to the process's end, less the profile's dump
    dump_s: float  # cProfile writing its statistics, after the return (not grokexp's)
    cpu_main_s: float
    cpu_children_s: float
    imports_by_package: dict[str, float] = field(default_factory=dict)
    tree: list[tuple[int, str, float]] = field(default_factory=list)  # (depth, name, s)
    self_by_kind: dict[str, float] = field(default_factory=dict)  # see self_by_kind()


def _name(func: tuple[str, int, str]) -> str:
    path, line, name = func
    if path == "~":
        return name
    parts = Path(path).parts
    where = "/".join(parts[parts.index("grokexp"):]) if "grokexp" in parts else parts[-1]
    return f"{where}:{name}"


def _is_import(func: tuple[str, int, str]) -> bool:
    label = func[0] if func[0] != "~" else func[2]
    return label.startswith(IMPORT_MACHINERY) or func[2].startswith(IMPORT_MACHINERY)


def call_tree(stats: pstats.Stats, root: str, min_s: float,
              max_depth: int = 7) -> list[tuple[int, str, float]]:
    """(depth, function, seconds) below the first function named ``root``.

    cProfile keeps one level of callers: a callee's seconds under its caller are exact, and
    deeper down a function's callees are scaled by the share of its time spent under the
    caller shown (gprof's approximation). Import machinery is one "imports" line per caller.
    """
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    callees: dict[Any, dict[Any, float]] = defaultdict(dict)
    for func, (_, _, _, _, callers) in table.items():
        for caller, (_, _, _, cumulative) in callers.items():
            callees[caller][func] = cumulative
    start = next((f for f in table if f[2] == root), None)
    if start is None:
        return []
    rows: list[tuple[int, str, float]] = [(0, _name(start), table[start][3])]

    def walk(func: Any, share: float, depth: int, seen: frozenset[Any]) -> None:
        if depth > max_depth:
            return
        below = {f: s * share for f, s in callees[func].items() if f not in seen}
        imported = sum(s for f, s in below.items() if _is_import(f))
        if imported >= min_s:
            rows.append((depth, "imports", imported))
        for child, seconds in sorted(below.items(), key=lambda kv: -kv[1]):
            if seconds < min_s or _is_import(child):
                continue
            rows.append((depth, _name(child), seconds))
            total = table[child][3]
            walk(child, seconds / total if total > 0 else 0.0, depth + 1, seen | {child})

    walk(start, 1.0, 1, frozenset({start}))
    return rows


def _kind(func: tuple[str, int, str]) -> str:
    """What a function's own time is: its package, or for a C call what it does."""
    path, _, name = func
    if path == "~":
        if "acquire" in name or "wait" in name or "sleep" in name:
            return "waiting (locks: probes, figures, threads)"
        for kind in ("torch", "sqlite3", "numpy"):
            if kind in name:
                return kind
        return "other C calls"
    if _is_import(func):
        return "imports"
    parts = Path(path).parts
    for anchor in ("site-packages", "grokexp"):
        if anchor in parts:
            at = parts.index(anchor)
            return "grokexp" if anchor == "grokexp" else parts[at + 1].removesuffix(".py")
    return "python's library"


def self_by_kind(stats: pstats.Stats) -> dict[str, float]:
    """The main thread's own seconds (cProfile's tottime) by :func:`_kind`."""
    totals: dict[str, float] = defaultdict(float)
    for func, (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        totals[_kind(func)] += own
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def imports_by_package(stderr: str) -> dict[str, float]:
    """``-X importtime``'s self seconds summed by top-level package, largest first."""
    totals: dict[str, float] = defaultdict(float)
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = line[len("import time:"):].split("|")
        totals[name.strip().split(".")[0]] += int(self_us) / 1e6
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def _finish(child: subprocess.Popen[bytes], what: str) -> tuple[str, float]:
    """A started command's stderr and the CPU seconds of it and of every process it waited
    for (its workers), once it has ended; exits when it failed."""
    assert child.stderr is not None
    stderr = child.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{what} failed:\n{stderr[-3000:]}")
    return stderr, usage.ru_utime + usage.ru_stime


def run_timed(command: list[str], cwd: Path, env: dict[str, str] | None = None
              ) -> tuple[float, float]:
    """(wall seconds, CPU seconds of it and of every process it waited for) of one command,
    which must succeed."""
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    _, cpu = _finish(child, " ".join(command))
    return time.perf_counter() - started, cpu


def profile_command(words: list[str], cwd: Path, root: str, min_s: float = 0.1,
                    env: dict[str, str] | None = None) -> Profiled:
    """Run ``grokexp WORDS`` profiled in a fresh interpreter in ``cwd``; ``root`` names the
    function the call tree starts from (``do_run`` for ``grokexp run``)."""
    with tempfile.TemporaryDirectory() as scratch:
        stem = str(Path(scratch) / "profile")
        command = [sys.executable, "-X", "importtime", "-c", PROFILED, stem, *words]
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
        stderr, cpu = _finish(child, f"profiled grokexp {' '.join(words)}")
        ended = time.perf_counter()
        # perf_counter is CLOCK_MONOTONIC on Linux: the child's readings are on our clock
        facts = json.loads(Path(stem + ".json").read_text())
        stats = pstats.Stats(stem + ".prof")
    return Profiled(
        wall_s=ended - started, command_s=facts["returned"] - started,
        exit_s=ended - facts["dumped"], dump_s=facts["dumped"] - facts["returned"],
        cpu_main_s=facts["cpu"],
        cpu_children_s=max(0.0, cpu - facts["cpu"]),
        imports_by_package=imports_by_package(stderr),
        tree=call_tree(stats, root, min_s), self_by_kind=self_by_kind(stats))


def print_profile(profiled: Profiled, indent: str = "  ") -> None:
    """The profile as lines: timings, imports by package, then the call tree."""
    print(f"{indent}one profiled run: {profiled.command_s:.2f} s from the interpreter's start "
          f"to the command's return, then {profiled.exit_s:.2f} s to the process's end "
          f"(after cProfile's {profiled.dump_s:.2f} s writing its statistics); CPU "
          f"{profiled.cpu_main_s:.2f} s in the main process, {profiled.cpu_children_s:.2f} s "
          "in the processes it started (probe process, figure workers)")
    shown = [f"{name} {s:.2f}" for name, s in profiled.imports_by_package.items() if s >= 0.05]
    total = sum(profiled.imports_by_package.values())
    print(f"{indent}imports, {total:.2f} s (their own time by package): {', '.join(shown)}")
    print(f"{indent}the main thread below the command (cProfile, wall seconds, >= cut):")
    for depth, name, seconds in profiled.tree:
        print(f"{indent}  {'  ' * depth}{seconds:6.2f}  {name}")
