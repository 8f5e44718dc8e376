"""What the Fourier progress measures cost, against the evaluation they ride on.

At every evaluation the loop measures each member's train and test accuracy and loss over
the pair table, and the diagnostics measure the per-evaluation probes (embedding structure,
layer statistics, inactive units); the Fourier measures add a forward over all P² pairs
recording the last ReLU layer, two 2-D projections over the grid and the embedding's
spectrum. This times both, in one process with one torch thread (the probe process has one),
on each spec's model at its own P with freshly initialised weights (the cost does not depend
on the weights), and prints milliseconds per evaluation without and with them. The times
are this process's CPU time (``time.process_time``: one thread, so the time it computed),
which a machine shared with other jobs inflates far less than wall-clock time.

    python benchmarks/fourier_cost.py [--repeats R]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from grokexp.diagnostics.probes import cadence_metrics, fourier_probe
from grokexp.engine.data import make_splits, pair_table
from grokexp.engine.model import Population
from grokexp.engine.sweep import expand_members
from grokexp.engine.train import TrainData, evaluate
from grokexp.spec.io import load_spec

# (spec file, members K): the paper's MLP alone and as a population, the architectures' specs
CASES = [("specs/baseline.toml", 1), ("specs/baseline.toml", 16),
         ("specs/transformer.toml", 1), ("specs/transformer.toml", 3),
         ("specs/onehot_mlp.toml", 1), ("specs/nanda.toml", 1)]


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: first-call allocations
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return 1000.0 * statistics.median(times)


def measure(path: str, k: int, repeats: int) -> dict[str, object]:
    spec = load_spec(Path(path).read_text(), path, [f"sweep.seeds={list(range(k))}"])
    members = expand_members(spec, path)
    table = pair_table(spec.task)
    data = TrainData(table, make_splits(spec.task, table,
                                        [m.spec.train.split_seed for m in members]))
    population = Population.from_specs([m.spec for m in members], torch.device("cpu"))
    params, arch, cfg = population.params, population.arch, spec.metrics

    def evaluation() -> None:  # the loop's accuracies and losses, and the cadence probe
        evaluate(population, data)
        cadence_metrics(params, arch, data, cfg)

    with torch.no_grad():
        base = median_ms(evaluation, repeats)
        fourier = median_ms(fourier_probe(params, arch, data, cfg), repeats)
    return {"spec": Path(path).name, "arch": arch.name, "P": arch.n_tokens, "K": k,
            "base": base, "fourier": fourier}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median kept)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| spec | architecture | P | K | evaluation (CPU ms) | Fourier measures (CPU ms) | "
          "evaluation with them (CPU ms) | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for path, k in CASES:
        row = measure(path, k, args.repeats)
        base, fourier = float(row["base"]), float(row["fourier"])  # type: ignore[arg-type]
        print(f"| `{row['spec']}` | {row['arch']} | {row['P']} | {row['K']} | {base:.1f} | "
              f"{fourier:.1f} | {base + fourier:.1f} | {(base + fourier) / base:.1f}× |",
              flush=True)


if __name__ == "__main__":
    main()
