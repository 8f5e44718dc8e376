"""The README's quick start, timed: ``grokexp run specs/quickstart.toml`` as a new user runs it.

A fresh interpreter runs the whole command into a throw-away store (its schema made
beforehand, untimed, as a user's store has it after the first command) and the script prints,
as Markdown for ``docs/results/quickstart.md``, each member's grok epochs and the command's
wall time against the README's promise: every seed generalises, and the run ends within a
minute on a 2-core CPU.

    python benchmarks/quickstart.py
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

from _common import emit, timed_grokexp_run

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 60.0


def main() -> None:
    result, wall = timed_grokexp_run(str(REPO / "specs/quickstart.toml"))
    members = result["members"]
    print("| seed | train ≥ 0.95 at epoch | test ≥ 0.95 at epoch | grokking delay | "
          "final test acc |")
    print("|---:|---:|---:|---:|---:|")
    for m in members:
        print(f"| {m['varied'].get('train.seed', '-')} | {m['train_grok_epoch']} | "
              f"{m['test_grok_epoch']} | {m['grokking_delay']} | {m['final_test_acc']:.3f} |")
    grokked = sum(m["test_grok_epoch"] is not None for m in members)
    print()
    print(f"quick start: {grokked} of {len(members)} seeds generalised; `grokexp run "
          f"specs/quickstart.toml` took {wall:.1f} s wall (target <= {TARGET_S:.0f} s: "
          f"{'met' if wall <= TARGET_S else 'missed'}) on {os.cpu_count()} cores, "
          f"{platform.processor() or platform.machine()}")
    emit({"bench": "quickstart", "wall_s": round(wall, 2), "grokked": grokked,
          "members": len(members)})


if __name__ == "__main__":
    main()
