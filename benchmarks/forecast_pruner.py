"""No pruner, the median pruner and the forecast pruner on the same study: time and mistakes.

Every run is the whole ``grokexp optimize`` command in a fresh interpreter with its own sqlite
study and MLflow store, over the same enqueued points (a shuffled shift × weight-decay grid,
each with the same seeds), so the three differ only in what they stop. The run without a
pruner trains every point to the end: it is the ground truth, both for the best delay and for
whether a trial another pruner stopped would in fact have generalised (a member trains
bitwise the same whatever else is in its population). Prints a table; it is not a test.

    python benchmarks/forecast_pruner.py                  # 16 points × 2 seeds, 500 epochs
    python benchmarks/forecast_pruner.py --points 32 --epochs 800
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from _common import create_mlflow_store

REPO = Path(__file__).resolve().parents[1]
SPEC = """
name = "bench-forecast-pruner"
[task]
modulus = 17
train_fraction = 0.8
[model]
embedding_dim = 24
hidden = 48
[train]
lr = 1e-2
batch_size = 64
epochs = {epochs}
stop_after_generalized = 0
[metrics]
every = 10
[optimize]
n_trials = {n_trials}
batch = {batch}
seeds = 2
sampler = "random"
prune_warmup = {warmup}
[optimize.space]
"init.embedding.shift" = {{low = -0.2, high = 1.8}}
"train.weight_decay" = {{low = 0.01, high = 3.0, log = true}}
"""
PRUNERS = ("none", "median", "forecast")


def spec_text(points: int, epochs: int, batch: int, warmup: int, seed: int) -> str:
    shifts = [-0.2 + 2.0 * i / 7 for i in range(8)]
    decays = [0.03, 0.1, 0.3, 1.0, 3.0]
    grid = list(itertools.product(shifts, decays))
    random.Random(seed).shuffle(grid)
    text = SPEC.format(epochs=epochs, n_trials=points, batch=batch, warmup=warmup)
    for shift, decay in grid[:points]:
        text += ('\n[[optimize.enqueue]]\n"init.embedding.shift" = '
                 f'{shift!r}\n"train.weight_decay" = {decay!r}\n')
    return text


def run(pruner: str, spec: Path, work: Path) -> tuple[float, optuna.Study]:
    out = work / pruner
    out.mkdir()
    create_mlflow_store(f"sqlite:///{out / 'mlflow.db'}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), env_path()])}
    env.pop("MLFLOW_TRACKING_URI", None)
    storage = f"sqlite:///{out / 'study.db'}"
    command = [sys.executable, "-m", "grokexp", "optimize", str(spec), "--quiet",
               "--set", f'optimize.pruner="{pruner}"', "--storage", storage,
               "--tracking-uri", f"sqlite:///{out / 'mlflow.db'}", "--out", str(out)]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=out, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"pruner {pruner} failed:\n{done.stderr}")
    return seconds, optuna.load_study(study_name="bench-forecast-pruner", storage=storage)


def env_path() -> str:
    return os.environ.get("PYTHONPATH", "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=50, help="optimize.prune_warmup")
    parser.add_argument("--seed", type=int, default=0, help="shuffles the grid")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        spec = work / "bench.toml"
        spec.write_text(spec_text(args.points, args.epochs, args.batch, args.warmup, args.seed))
        results = {p: run(p, spec, work) for p in PRUNERS}
    truth = {t.number: t for t in results["none"][1].get_trials()}
    good = [t.value for t in truth.values() if t.user_attrs.get("censored") is False]
    best = min(good) if good else None
    print(f"{args.points} points × 2 seeds, mod-17 model, {args.epochs} epochs, batch "
          f"{args.batch}, prune_warmup {args.warmup}; without a pruner {len(good)} of "
          f"{len(truth)} points generalise (upper median of the seeds), best delay {best}")
    print(f"{'pruner':<9} {'wall s':>7} {'complete':>8} {'pruned':>6} {'pruned but grokked':>18}"
          f" {'s to ≤ 1.1 × best':>17} {'best found':>10} {'pruned at (median)':>18}")
    for pruner, (seconds, study) in results.items():
        trials = study.get_trials()
        start = min(t.datetime_start for t in trials if t.datetime_start)
        complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
        wrong = sum(truth[t.number].user_attrs.get("censored") is False for t in pruned)
        near = [t.datetime_complete for t in complete if best is not None
                and t.user_attrs.get("censored") is False and t.value <= 1.1 * best]
        reach = f"{(min(near) - start).total_seconds():.1f}" if near else "never"
        found = min((t.value for t in complete if t.user_attrs.get("censored") is False),
                    default=None)
        stops = sorted(max(t.intermediate_values) for t in pruned if t.intermediate_values)
        at = f"epoch {stops[len(stops) // 2]}" if stops else "-"
        print(f"{pruner:<9} {seconds:>7.1f} {len(complete):>8} {len(pruned):>6} "
              f"{wrong:>11} of {len(pruned):<4} {reach:>17} {found!s:>10} {at:>18}",
              flush=True)
    for pruner, (_, study) in results.items():  # the mistakes, to see why
        for t in study.get_trials():
            if t.state == optuna.trial.TrialState.PRUNED and truth[
                    t.number].user_attrs.get("censored") is False:
                attrs = {k: v for k, v in t.user_attrs.items() if k.startswith("forecast")}
                print(f"  {pruner}: trial {t.number} {t.params} stopped at epoch "
                      f"{max(t.intermediate_values)} {attrs}; without pruning: delay "
                      f"{truth[t.number].value}")


if __name__ == "__main__":
    main()
