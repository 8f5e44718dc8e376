"""CPU time per member-epoch of each configuration in specs/compare_reducers.toml.

Each configuration's three seeds train alone as one population for ``--epochs`` epochs on
the paper's model; configurations take turns (round robin, best of ``--repeats``) so a busy
machine slows them alike. CPU time, not wall time: the README's "CPU-ms / member-epoch"
column (section "Shortening grokking: the published reducers").

    python benchmarks/reducer_cost.py [--epochs 40] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from grokexp.engine.sweep import Member, expand_members
from grokexp.run.runner import train_group
from grokexp.spec.io import load_spec

SPEC = Path(__file__).resolve().parents[1] / "specs" / "compare_reducers.toml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    members = expand_members(load_spec(SPEC.read_text(), SPEC.name,
                                       [f"train.epochs={args.epochs}",
                                        f"metrics.every={args.epochs}"]))
    configurations: dict[str, list[Member]] = {}
    for m in members:
        label = ", ".join(f"{k}={v}" for k, v in m.varied.items() if k != "train.seed")
        configurations.setdefault(label or "AdamW (paper)", []).append(m)
    best: dict[str, float] = {}
    for _ in range(args.repeats):
        for label, group in configurations.items():
            population = [Member(i, m.spec, m.varied) for i, m in enumerate(group)]
            start = time.process_time()
            train_group(population, torch.device("cpu"), [])
            best[label] = min(best.get(label, float("inf")), time.process_time() - start)
    print("| configuration | CPU-ms / member-epoch |\n|---|---|")
    for label, group in configurations.items():
        print(f"| {label} | {1000 * best[label] / (args.epochs * len(group)):.2f} |")


if __name__ == "__main__":
    main()
