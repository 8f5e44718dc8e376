"""`grokexp run specs/scale_sweep.toml` against the peer training the same members one by one.

Both sides are whole commands in fresh interpreters, timed from start to exit:

- grokexp: ``python -m grokexp run specs/scale_sweep.toml --set train.epochs=E`` into a
  throw-away MLflow store (its schema created beforehand, untimed), with that spec's own
  metrics (accuracy and loss every 10 epochs, the distribution, cosine and sparsity
  diagnostics, checkpoints and figures);
- the peer: this script with ``--peer``: the hand-written loop of ``peers.py`` (one
  ``nn.Module``, ``torch.optim.AdamW``, minibatches of 128), one member after another, each
  Xavier-normal weights and biases times α, evaluating train and test accuracy on the whole
  table every 10 epochs, as the public grokking scripts do; nothing is logged.

The members are the spec's (α = 1, 3, 5, 7, one seed each). ``E`` is short enough that no
member generalises, so both sides train every member for all E epochs.

    python benchmarks/scale_sweep.py [--epochs 1000] [--repeats 1]   # about 2 min
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import LR, N_TRAIN, WEIGHT_DECAY, P, create_mlflow_store
from peers import PeerNet, plain_epoch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SPEC = REPO / "specs" / "scale_sweep.toml"
SCALES = (1.0, 3.0, 5.0, 7.0)
EVERY = 10


def xavier_scaled_(model: PeerNet, alpha: float) -> None:
    """The paper's initialisation: Xavier-normal weights and biases, times α."""
    with torch.no_grad():
        for layer in (model.hidden, model.out):
            fan_out, fan_in = layer.weight.shape
            std = math.sqrt(2.0 / (fan_in + fan_out))
            layer.weight.normal_(0.0, std).mul_(alpha)
            layer.bias.normal_(0.0, std).mul_(alpha)
        model.embed.weight.normal_(0.0, math.sqrt(2.0 / sum(model.embed.weight.shape)))
        model.embed.weight.mul_(alpha)


def peer_member(alpha: float, epochs: int, seed: int = 0) -> float:
    """One member, start to end, as a hand-written script trains it; its last test accuracy."""
    torch.manual_seed(seed)
    i, j = torch.meshgrid(torch.arange(P), torch.arange(P), indexing="ij")
    pairs = torch.stack([i.reshape(-1), j.reshape(-1)], 1)
    labels = pairs.sum(1) % P
    order = torch.randperm(P * P)
    train, test = order[:N_TRAIN], order[N_TRAIN:]
    model = PeerNet()
    xavier_scaled_(model, alpha)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    test_acc = 0.0
    for epoch in range(1, epochs + 1):
        plain_epoch(model, opt, pairs, labels, train[torch.randperm(N_TRAIN)])
        if epoch % EVERY == 0:
            with torch.no_grad():
                right = model(pairs).argmax(1) == labels
                test_acc = float(right[test].float().mean())
                _ = float(right[train].float().mean())
    return test_acc


def timed(command: list[str], cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MLFLOW_TRACKING_URI", None)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=1, help="best of this many runs each")
    parser.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        for alpha in SCALES:
            peer_member(alpha, args.epochs)
        return
    grokexp = peer = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            store = Path(tmp) / f"run{repeat}"
            store.mkdir()
            create_mlflow_store(f"sqlite:///{store / 'mlflow.db'}")
            grokexp = min(grokexp, timed(
                [sys.executable, "-m", "grokexp", "run", str(SPEC), "--quiet",
                 "--set", f"train.epochs={args.epochs}",
                 "--tracking-uri", f"sqlite:///{store / 'mlflow.db'}"], store))
            peer = min(peer, timed([sys.executable, __file__, "--peer",
                                    "--epochs", str(args.epochs)], Path(tmp)))
    members = len(SCALES)
    print(f"scale sweep: {members} members (α = {', '.join(f'{a:g}' for a in SCALES)}), "
          f"{args.epochs} epochs each, best of {args.repeats}")
    print("| command | wall s | s per model-epoch | × peer |")
    print("|---|---:|---:|---:|")
    for name, seconds in (("peer, members one by one", peer),
                          ("`grokexp run specs/scale_sweep.toml`", grokexp)):
        print(f"| {name} | {seconds:.1f} | {seconds / members / args.epochs * 1e3:.2f} ms | "
              f"{peer / seconds:.2f}× |")


if __name__ == "__main__":
    main()
