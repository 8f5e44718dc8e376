"""Each architecture's spec, run as a user runs it: grok epochs of 3 seeds and the wall time.

For every spec named (default: the four architecture specs), a fresh interpreter runs
``grokexp run SPEC --set 'sweep.seeds=[0,1,2]' --json`` into a throw-away store and the
script prints, as Markdown for ``docs/results/architectures.md``, each member's train and
test grok epochs (first evaluated epoch with accuracy >= the spec's threshold), its final
test accuracy, and the command's wall time.

    python benchmarks/architecture_specs.py
    python benchmarks/architecture_specs.py specs/transformer.toml --seeds 0,1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _common import emit, timed_grokexp_run

REPO = Path(__file__).resolve().parents[1]
SPECS = ("specs/transformer.toml", "specs/power_decoder.toml", "specs/onehot_mlp.toml")


def run_spec(spec: str, seeds: list[int]) -> tuple[list[dict], float]:
    """The members of one ``grokexp run --json`` and its wall seconds."""
    result, wall = timed_grokexp_run(str(REPO / spec), [f"sweep.seeds={json.dumps(seeds)}"])
    return result["members"], wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("specs", nargs="*", default=list(SPECS))
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    print("| spec | seed | train ≥ threshold at epoch | test ≥ threshold at epoch | "
          "grokking delay | final test acc | wall of the 3-seed command |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for spec in args.specs:
        members, wall = run_spec(spec, seeds)
        for m in members:
            print(f"| `{spec}` | {m['varied'].get('train.seed', '-')} | {m['train_grok_epoch']} "
                  f"| {m['test_grok_epoch']} | {m['grokking_delay']} | "
                  f"{m['final_test_acc']:.3f} | {wall:.0f} s |")
        grokked = sum(m["test_grok_epoch"] is not None for m in members)
        emit({"bench": "architecture_specs", "spec": spec, "wall_s": round(wall, 1),
              "grokked": grokked, "members": len(members)})
        sys.stdout.flush()


if __name__ == "__main__":
    main()
