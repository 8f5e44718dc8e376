"""How long ``grokexp reproduce`` takes, quick and full, and where the time goes (per spec).

Runs the whole command in a fresh process into a throw-away store (schema made beforehand,
untimed) and prints the wall time against the targets (``--quick`` under 3 minutes, the full
reproduction, three seeds per spec, under 30 minutes on a 2-core machine) and each spec's
seconds from the command's own report.

    python benchmarks/reproduce_time.py                  # quick, then full (~30 min)
    python benchmarks/reproduce_time.py --modes quick
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import create_mlflow_store, emit

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"quick": 3 * 60.0, "full": 30 * 60.0}


def timed(mode: str, tmp: Path) -> tuple[float, list[tuple[str, int, float]]]:
    """Wall seconds of one reproduce and (spec, members, seconds) from its report."""
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    create_mlflow_store(uri)
    command = [sys.executable, "-m", "grokexp", "reproduce", "--out", str(tmp / "gallery"),
               "--specs-dir", str(REPO / "specs"), "--tracking-uri", uri]
    if mode == "quick":
        command.append("--quick")
    start = time.perf_counter()
    done = subprocess.run(command, cwd=tmp, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"grokexp reproduce failed:\n{done.stderr[-4000:]}")
    specs = [(name, int(members), float(seconds)) for name, members, seconds in re.findall(
        r"reproduce: (\S+): (\d+) member\(s\) in (\d+) s", done.stderr)]
    return wall, specs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="quick,full")
    args = parser.parse_args()
    for mode in args.modes.split(","):
        with tempfile.TemporaryDirectory() as name:
            wall, specs = timed(mode, Path(name))
        target = TARGETS[mode]
        print(f"grokexp reproduce{' --quick' if mode == 'quick' else ''}: {wall / 60:.1f} min "
              f"(target < {target / 60:.0f} min: {wall / target:.2f} of it); per spec: "
              + ", ".join(f"{n} {s:.0f} s ({m})" for n, m, s in specs), flush=True)
        emit({"bench": "reproduce", "mode": mode, "seconds": wall,
              "specs": {n: s for n, _, s in specs}})


if __name__ == "__main__":
    main()
