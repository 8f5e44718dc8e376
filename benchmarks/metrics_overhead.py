"""How much the paper's diagnostics add to training time, at the default cadence.

Trains the same spec three times into a throw-away MLflow store: with every diagnostic
switched off, with the defaults of ``[metrics]``, and with the defaults but the Fourier
progress measures (on by default at every evaluation of a modular task), and prints the
wall-clock ratios.
Training is identical in all three (the probes draw from their own generators), so the
differences are the cost of the metrics, their checkpoints, tables and figures.

    python benchmarks/metrics_overhead.py [SPEC] [--epochs N] [--seeds K] [--repeats R]

By default the spec's own ``[metrics]`` table is replaced by the defaults (keeping ``every``);
``--spec-metrics`` times the spec as written (e.g. the baseline's denser MC cadence).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import tomli_w

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from grokexp.engine.sweep import expand_members
from grokexp.run.runner import run_experiment
from grokexp.spec.io import load_spec
from grokexp.tracking.mlflow_tracker import MlflowTracker

OFF = ["metrics.mc_dropout=false", "metrics.drc=false", "metrics.embedding_cos=false",
       "metrics.distributions=false", "metrics.inactive_neurons=false",
       "metrics.checkpoints=0", "metrics.fourier=false"]
NO_FOURIER = ["metrics.fourier=false"]  # the defaults but the Fourier progress measures


def timed(text: str, source: str, overrides: list[str], store: Path) -> float:
    spec = load_spec(text, source, overrides)
    members = expand_members(spec, source)
    tracker = MlflowTracker(f"sqlite:///{store}", spec.name)
    start = time.perf_counter()
    run_experiment(spec, members, tracker)
    return time.perf_counter() - start


TARGET = 0.15  # the issue's bound on the default diagnostics' share of training time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default="specs/baseline.toml")
    parser.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    parser.add_argument("--seeds", type=int, default=1, help="members (seeds) per population")
    parser.add_argument("--repeats", type=int, default=1,
                        help="alternate off/default runs this often and keep each one's best "
                             "time (a shared machine makes single timings noisy)")
    parser.add_argument("--spec-metrics", action="store_true",
                        help="keep the spec's own [metrics] cadence instead of the defaults")
    args = parser.parse_args()
    text = Path(args.spec).read_text()
    if not args.spec_metrics:  # the default cadence: drop the spec's [metrics] table
        raw = tomllib.loads(text)
        every = raw.get("metrics", {}).get("every", 10)
        raw["metrics"] = {"every": every}
        text = tomli_w.dumps(raw)
    common = [f"sweep.seeds={list(range(args.seeds))}"]
    if args.epochs:
        common.append(f"train.epochs={args.epochs}")
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "mlflow.db"
        timed(text, args.spec, [*common, *OFF, "train.epochs=20"], store)  # warm-up
        base = full = no_fourier = float("inf")
        for _ in range(args.repeats):
            base = min(base, timed(text, args.spec, [*common, *OFF], store))
            full = min(full, timed(text, args.spec, common, store))
            no_fourier = min(no_fourier, timed(text, args.spec, [*common, *NO_FOURIER], store))
    print(f"{'spec':<24} {'members':>7} {'metrics off (s)':>15} {'default (s)':>11} "
          f"{'overhead':>8}")
    overhead = (full - base) / base
    print(f"{args.spec:<24} {args.seeds:>7} {base:>15.1f} {full:>11.1f} {overhead:>8.1%}")
    print(f"diagnostics overhead (default [metrics], best of {args.repeats} each): "
          f"{overhead:.1%} (target <= {TARGET:.0%}: {overhead / TARGET:.2f} of it)")
    print(f"without the Fourier measures (metrics.fourier = false): {no_fourier:.1f} s, "
          f"overhead {(no_fourier - base) / base:.1%}; the Fourier measures' own share: "
          f"{(full - no_fourier) / base:.1%} of the training time")


if __name__ == "__main__":
    main()
