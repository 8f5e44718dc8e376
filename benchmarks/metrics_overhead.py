"""How much the paper's diagnostics add to training time, at the default cadence.

Trains the same spec twice into a throw-away MLflow store, once with every diagnostic
switched off and once with the defaults of ``[metrics]``, and prints the wall-clock ratio.
Training is identical in both (the probes draw from their own generators), so the
difference is the cost of the metrics, their checkpoints, tables and figures.

    python benchmarks/metrics_overhead.py [SPEC] [--epochs N] [--seeds K]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from grokexp.runner import run_experiment
from grokexp.spec import load_spec
from grokexp.sweep import expand_members
from grokexp.tracking import MlflowTracker

OFF = ["metrics.mc_dropout=false", "metrics.drc=false", "metrics.embedding_cos=false",
       "metrics.distributions=false", "metrics.inactive_neurons=false",
       "metrics.checkpoints=0"]


def timed(text: str, source: str, overrides: list[str], store: Path) -> float:
    spec = load_spec(text, source, overrides)
    members = expand_members(spec, source)
    tracker = MlflowTracker(f"sqlite:///{store}", spec.name)
    start = time.perf_counter()
    run_experiment(spec, members, tracker)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default="specs/baseline.toml")
    parser.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    parser.add_argument("--seeds", type=int, default=1, help="members (seeds) per population")
    args = parser.parse_args()
    text = Path(args.spec).read_text()
    common = [f"sweep.seeds={list(range(args.seeds))}"]
    if args.epochs:
        common.append(f"train.epochs={args.epochs}")
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "mlflow.db"
        timed(text, args.spec, [*common, *OFF, "train.epochs=20"], store)  # warm-up
        base = timed(text, args.spec, [*common, *OFF], store)
        full = timed(text, args.spec, common, store)
    print(f"{'spec':<24} {'members':>7} {'metrics off (s)':>15} {'default (s)':>11} "
          f"{'overhead':>8}")
    print(f"{args.spec:<24} {args.seeds:>7} {base:>15.1f} {full:>11.1f} "
          f"{(full - base) / base:>8.1%}")


if __name__ == "__main__":
    main()
