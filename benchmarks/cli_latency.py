"""Start-up latency of the CLI: ``grokexp --help`` and ``grokexp validate SPEC``.

Each command runs in a fresh interpreter (``python -m grokexp``), several times; the median
wall time is reported, with whether the command imported torch or mlflow (it should not).

    python benchmarks/cli_latency.py --spec specs/baseline.toml
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import emit, median

PROBE = ("import runpy, sys; sys.argv = ['grokexp'] + sys.argv[1:]\n"
         "try:\n    runpy.run_module('grokexp', run_name='__main__')\n"
         "except SystemExit:\n    pass\n"
         "print('IMPORTED', 'torch' in sys.modules, 'mlflow' in sys.modules, file=sys.stderr)")


def latency(args: list[str], repeats: int) -> tuple[float, bool, bool]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "grokexp", *args], capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    probe = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True)
    flags = [line.split()[1:] for line in probe.stderr.splitlines()
             if line.startswith("IMPORTED")]
    if not flags:
        raise SystemExit(f"could not probe the imports of grokexp {' '.join(args)}")
    return median(times), flags[-1][0] == "True", flags[-1][1] == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", default="specs/baseline.toml",
                        help="a spec file, relative to the repository root")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    os.chdir(Path(__file__).resolve().parent.parent)
    try:
        import grokexp.cli  # noqa: F401
    except ImportError as err:
        print(f"grokexp.cli is not importable ({err}); nothing to time", file=sys.stderr)
        raise SystemExit(1) from None
    for command, target in ((["--help"], 0.3), (["validate", args.spec], 0.5)):
        seconds, torch_in, mlflow_in = latency(command, args.repeats)
        emit({"system": "cli", "command": "grokexp " + " ".join(command), "seconds": seconds,
              "target": target, "torch": torch_in, "mlflow": mlflow_in})


if __name__ == "__main__":
    main()
