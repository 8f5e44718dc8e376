"""The two peers grokexp is measured against, on the baseline workload.

``plain``: the hand-written loop of the public grokking repositories: one ``nn.Module``
(Embedding(P, 128) → concat → Linear(256, 256) → ReLU → Linear(256, P)), torch.optim.AdamW,
a Python loop over shuffled minibatches of 128.
``vmap``: PyTorch's model-ensembling recipe for K models at once:
``torch.func.stack_module_state`` + ``vmap(functional_call)``, one AdamW over the stacked
parameters, each model with its own shuffled minibatches.

    python benchmarks/peers.py plain
    python benchmarks/peers.py vmap --k 16
    python benchmarks/peers.py vmap --k 256 --device cuda
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F
from _common import (
    BATCH,
    EMBED,
    HIDDEN,
    LR,
    N_TRAIN,
    WEIGHT_DECAY,
    P,
    emit,
    epochs_for,
    median,
    peak_rss_mib,
    set_threads,
    timing_args,
)
from torch import nn


class PeerNet(nn.Module):
    """The paper's network as everyone writes it."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(P, EMBED)
        self.hidden = nn.Linear(2 * EMBED, HIDDEN)
        self.out = nn.Linear(HIDDEN, P)

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:  # (B, 2) → (B, P)
        return self.out(torch.relu(self.hidden(self.embed(pairs).flatten(1))))


def training_pairs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Half of all (i, j) pairs mod P, with labels (i + j) mod P."""
    g = torch.Generator().manual_seed(seed)
    i, j = torch.meshgrid(torch.arange(P), torch.arange(P), indexing="ij")
    pairs = torch.stack([i.reshape(-1), j.reshape(-1)], 1)
    keep = torch.randperm(P * P, generator=g)[:N_TRAIN]
    return pairs[keep], (pairs[keep].sum(1) % P)


def plain_epochs(epochs: int, seed: int = 0) -> tuple[float, float]:
    """Wall and CPU (all threads) seconds per epoch of the plain loop."""
    torch.manual_seed(seed)
    x, y = training_pairs(seed)
    model = PeerNet()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        plain_epoch(model, opt, x, y, torch.randperm(N_TRAIN))
    return (time.perf_counter() - start) / epochs, (time.process_time() - cpu) / epochs


def plain_epoch(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                order: torch.Tensor) -> None:
    """One epoch of the plain loop: minibatches of 128 of ``x[order]``, one AdamW step each."""
    for s in range(0, len(order), BATCH):
        idx = order[s:s + BATCH]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()


def vmap_epochs(k: int, epochs: int, seed: int = 0,
                device: str = "cpu") -> tuple[float, float]:
    """Wall and CPU (all threads) seconds per model-epoch of the vmap ensemble of k models."""
    from torch.func import functional_call, stack_module_state, vmap

    torch.manual_seed(seed)
    x, y = (t.to(device) for t in training_pairs(seed))
    models = [PeerNet().to(device) for _ in range(k)]
    params, buffers = stack_module_state(models)  # type: ignore[arg-type]
    base = copy.deepcopy(models[0]).to("meta")
    opt = torch.optim.AdamW(list(params.values()), lr=LR, weight_decay=WEIGHT_DECAY)

    def one(p: dict, b: dict, xb: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (p, b), (xb,))

    batched = vmap(one)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        order = torch.stack([torch.randperm(N_TRAIN) for _ in range(k)]).to(device)  # (K, N)
        for s in range(0, N_TRAIN, BATCH):
            idx = order[:, s:s + BATCH]  # (K, B)
            out = batched(params, buffers, x[idx])  # (K, B, P)
            loss = F.cross_entropy(out.flatten(0, 1), y[idx].flatten(), reduction="none")
            opt.zero_grad()
            loss.view(k, -1).mean(1).sum().backward()
            opt.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return ((time.perf_counter() - start) / epochs / k,
            (time.process_time() - cpu) / epochs / k)


def main() -> None:
    parser = timing_args(__doc__ or "")
    parser.add_argument("system", choices=["plain", "vmap"])
    parser.add_argument("--device", default="cpu", help="the vmap ensemble's device")
    args = parser.parse_args()
    threads = set_threads(args.threads)
    k = 1 if args.system == "plain" else args.k
    epochs = epochs_for(k, args.epochs)
    run = (lambda: plain_epochs(epochs)) if args.system == "plain" else (
        lambda: vmap_epochs(k, epochs, device=args.device))
    run()  # warm-up: first-call costs (allocations, kernel selection) out of the timing
    measured = [run() for _ in range(args.repeats)]
    times = [wall for wall, _ in measured]
    emit({"system": args.system, "k": k, "threads": threads, "epochs": epochs,
          "device": args.device if args.system == "vmap" else "cpu",
          "s_per_model_epoch": median(times), "all": times,
          "cpu_s_per_model_epoch": median([cpu for _, cpu in measured]),
          "peak_rss_mib": peak_rss_mib()})


if __name__ == "__main__":
    main()
