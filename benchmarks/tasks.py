"""The tasks a spec can name, and what S5 costs: the table docs/tasks.md includes.

For each ``task.operation`` the script builds grokexp's pair table (at the default modulus,
53) and prints its tokens, classes, pairs, the classes the labels actually take and whether
i ∘ j = j ∘ i on every pair. With ``--speed`` it also times ``specs/s5_transformer.toml``:
two runs in fresh interpreters into throw-away stores, 10 and 60 epochs; the difference of
their wall times over 50 epochs is the cost of an epoch (evaluation every 10 epochs
included), without the start-up, the first evaluation and the figures both runs pay.

    python benchmarks/tasks.py [--speed]
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import torch
from _common import timed_grokexp_run

from grokexp.engine.data import pair_table
from grokexp.spec.io import validate_spec

REPO = Path(__file__).resolve().parents[1]
FORMULA = {"add": "i + j mod P", "sub": "i − j mod P", "mul": "i · j mod P",
           "div": "i · j⁻¹ mod P (j ≠ 0; P prime)", "x**2+y**2": "i² + j² mod P",
           "x**2+x*y+y**2": "i² + ij + j² mod P", "x**3+x*y": "i³ + ij mod P",
           "s5": "a∘b, (a∘b)(x) = a[b[x]]"}
SHORT, LONG = 10, 60


def table() -> None:
    print("| `task.operation` | label | tokens = classes | pairs | classes taken | "
          "commutative |")
    print("|---|---|---:|---:|---:|---|")
    for operation, formula in FORMULA.items():
        task = validate_spec({"name": "t", "task": {"operation": operation}}, "t.toml").task
        t = pair_table(task)
        square = torch.full((t.modulus, t.modulus), -1)
        square[t.left, t.right] = t.labels
        commutative = "yes" if torch.equal(square, square.T) else "no"
        print(f"| `{operation}` | {formula} | {t.modulus} | {t.size:,} | "
              f"{len(set(t.labels.tolist()))} | {commutative} |")


def timed_run(epochs: int) -> float:
    return timed_grokexp_run(str(REPO / "specs/s5_transformer.toml"),
                             [f"train.epochs={epochs}"])[1]


def speed() -> None:
    short, long = timed_run(SHORT), timed_run(LONG)
    per_epoch = (long - short) / (LONG - SHORT) * 1000
    print()
    print(f"specs/s5_transformer.toml (one member): {SHORT} epochs {short:.1f} s wall, "
          f"{LONG} epochs {long:.1f} s wall: {per_epoch:.0f} ms an epoch; its budget of "
          f"3000 epochs would take about {per_epoch * 3000 / 60000:.0f} min, on "
          f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", action="store_true", help="also time the S5 spec")
    args = parser.parse_args()
    table()
    if args.speed:
        speed()


if __name__ == "__main__":
    main()
