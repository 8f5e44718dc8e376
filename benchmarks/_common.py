"""Shared by the benchmark scripts: the workload's constants, timing and reporting helpers.

Every script prints one JSON object per measurement on a line starting with ``BENCH``;
``run_all.py`` runs each in a fresh process (so peak RSS is that configuration's own) and
prints the table. The workload is the baseline spec: P = 53, addition, half the pairs for
training, embedding 128, one hidden layer of 256, batch 128, AdamW lr 3e-4, weight decay 1.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
from collections.abc import Sequence
from typing import Any

P, EMBED, HIDDEN, BATCH = 53, 128, 256, 128
LR, WEIGHT_DECAY = 3e-4, 1.0
N_TRAIN = int(0.5 * P * P)  # 1404 training pairs, 11 minibatches per epoch


def forward_flops_per_pair() -> int:
    """Matmul FLOPs of one forward pass of one pair through the concatenated embedding:
    (2d → H) and (H → P) matmuls, 2 FLOPs per multiply-add."""
    return 2 * (2 * EMBED * HIDDEN + HIDDEN * P)


def model_epoch_flops() -> float:
    """Matmul FLOPs of one epoch of one model, counted as the peer computes it.

    The forward per pair (:func:`forward_flops_per_pair`); the backward costs twice the
    forward (input and weight gradients). Embedding lookups, biases, activations and the
    optimiser are not counted: this is the work a matmul unit must do.
    """
    return 3.0 * forward_flops_per_pair() * N_TRAIN


def engine_epoch_flops() -> float:
    """Matmul FLOPs grokexp actually executes per model-epoch (fewer than the peer's).

    Per step, the first layer is the per-token tables (2P × d × H multiply-adds, forward, and
    twice that backward), whatever the batch; per pair, the output layer as the peer's.
    """
    steps = -(-N_TRAIN // BATCH)
    tables = 3 * 2 * (2 * P) * EMBED * HIDDEN * steps
    output = 3 * 2 * HIDDEN * P * N_TRAIN
    return float(tables + output)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def emit(row: dict[str, Any]) -> None:
    """One measurement, machine-readable, for run_all.py."""
    print("BENCH " + json.dumps(row), flush=True)


def timing_args(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--k", type=int, default=1, help="models trained at once")
    parser.add_argument("--epochs", type=int, default=0,
                        help="epochs per repeat (0: enough for about 64 model-epochs)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median taken)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    return parser


def epochs_for(k: int, requested: int, minimum: int = 3) -> int:
    return requested if requested > 0 else max(minimum, -(-64 // k))


def set_threads(threads: int) -> int:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    return int(torch.get_num_threads())


def fail(message: str) -> None:
    print(message, file=sys.stderr)
    raise SystemExit(1)


def create_mlflow_store(tracking_uri: str) -> None:
    """Create an MLflow store's schema, untimed, in its own interpreter.

    A new SQLite store runs MLflow's schema migrations once (about 2 s here); a user's store
    has them behind it after the first command, so whole-command timings start from a store
    that exists.
    """
    import subprocess

    code = ("import sys\nfrom mlflow.tracking import MlflowClient\n"
            "MlflowClient(tracking_uri=sys.argv[1]).search_experiments()\n")
    subprocess.run([sys.executable, "-c", code, tracking_uri], check=True,
                   capture_output=True)


def timed_grokexp_run(spec: str, overrides: Sequence[str] = ()) -> tuple[dict[str, Any], float]:
    """``grokexp run SPEC --set … --json`` into a fresh store (made untimed first) in a
    scratch folder: its JSON result and its wall seconds. A failed run ends the benchmark
    with its stderr."""
    import subprocess
    import tempfile
    import time
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        create_mlflow_store(uri)
        sets = [word for item in overrides for word in ("--set", item)]
        command = [sys.executable, "-m", "grokexp", "run", spec, *sets, "--tracking-uri", uri,
                   "--json"]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=tmp, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"grokexp run {spec} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), wall
