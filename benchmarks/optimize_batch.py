"""Wall time of one Optuna study with ``--batch 1`` against ``--batch 8`` on the same trials.

The 32 trials are fixed points (enqueued), so both runs train exactly the same work: a
(shift × weight decay) grid, each point with two seeds. With ``--batch 1`` every trial is its
own population of 2 members; with ``--batch 8`` eight trials train together as one population
of 16. Each run is the whole ``grokexp optimize`` command in a fresh interpreter with its own
study journal and MLflow store (its schema created beforehand, untimed, as a user's store
is after the first command), so start-up, MLflow runs and the study's figures count too.
Prints a table; it is not a test.

    python benchmarks/optimize_batch.py                 # 500 epochs, as make bench: ~1.5 min
    python benchmarks/optimize_batch.py --model paper --epochs 100
    python benchmarks/optimize_batch.py --device cuda --batches 1 4 8
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import create_mlflow_store

REPO = Path(__file__).resolve().parents[1]

MODELS = {  # small: groks within a few hundred epochs; paper: the baseline's model and lr
    "small": "[task]\nmodulus = 17\ntrain_fraction = 0.8\n[model]\nembedding_dim = 24\n"
             "hidden = 48\n[train]\nlr = 1e-2\nbatch_size = 64\n",
    "paper": "[task]\nmodulus = 53\ntrain_fraction = 0.5\n[model]\nembedding_dim = 128\n"
             "hidden = 256\n[train]\nlr = 3e-4\nbatch_size = 128\n",
}
SPEC = """
name = "bench-optimize"
{model}epochs = {epochs}
stop_after_generalized = 0
device = "{device}"
[metrics]
every = 10
[optimize]
n_trials = {n_trials}
seeds = 2
[optimize.space]
"init.embedding.shift" = {{low = -0.2, high = 1.8}}
"train.weight_decay" = {{low = 0.01, high = 3.0, log = true}}
"""


def spec_text(epochs: int, n_trials: int, device: str, model: str = "small") -> str:
    shifts = [-0.2 + 2.0 * i / 7 for i in range(8)]
    decays = [0.1, 0.3, 1.0, 3.0]
    points = list(itertools.product(shifts, decays))[:n_trials]
    text = SPEC.format(model=MODELS[model], epochs=epochs, n_trials=n_trials, device=device)
    for shift, decay in points:
        text += ('\n[[optimize.enqueue]]\n"init.embedding.shift" = '
                 f'{shift!r}\n"train.weight_decay" = {decay!r}\n')
    return text


def run(batch: int, spec: Path, work: Path) -> tuple[float, str]:
    """One fresh study in its own stores; returns (seconds, the best line of the table)."""
    out = work / f"batch{batch}"
    out.mkdir()
    create_mlflow_store(f"sqlite:///{out / 'mlflow.db'}")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [sys.executable, "-m", "grokexp", "optimize", str(spec), "--batch", str(batch),
               "--quiet", "--storage", str(out / "study.log"),
               "--tracking-uri", f"sqlite:///{out / 'mlflow.db'}", "--out", str(out)]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=out, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"batch {batch} failed:\n{done.stderr}")
    lines = done.stdout.splitlines()
    head = next((line for line in lines if line.startswith("| trial ")), None)
    rows = [line for line in lines if line.startswith("| ") and line[2].isdigit()]
    if head is None or not rows:
        return seconds, "-"
    cells = [[c.strip() for c in line.strip("| ").split(" | ")] for line in (head, rows[0])]
    return seconds, ", ".join(f"{name} {value}" for name, value in zip(*cells, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", choices=sorted(MODELS), default="small",
                        help="small (P=17, 24/48 units) or the paper's (P=53, 128/256)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        spec = work / "bench.toml"
        spec.write_text(spec_text(args.epochs, args.trials, args.device, args.model))
        print(f"{args.trials} trials × 2 seeds, {args.model} model, {args.epochs} epochs, "
              f"device {args.device}")
        print(f"{'batch':>5} {'wall s':>8} {'trials/min':>10}  best trial")
        base = None
        for batch in args.batches:
            seconds, best = run(batch, spec, work)
            base = base or seconds
            print(f"{batch:>5} {seconds:>8.1f} {60 * args.trials / seconds:>10.1f}  {best}"
                  f"   (×{base / seconds:.2f})", flush=True)


if __name__ == "__main__":
    main()
