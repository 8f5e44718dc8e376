"""grokexp's engine on the baseline workload: ``train.train`` on a population of K members.

Members differ by seed (init, split, batch order), as in a seed sweep. Evaluation runs only at
epoch 0 and at the end; the clock starts after the epoch-0 evaluation, so a timed repeat is its
epochs plus one full-table evaluation.

    python benchmarks/population.py --k 16
"""

from __future__ import annotations

import time

import torch
from _common import (
    BATCH,
    EMBED,
    HIDDEN,
    LR,
    WEIGHT_DECAY,
    P,
    emit,
    epochs_for,
    median,
    peak_rss_mib,
    set_threads,
    timing_args,
)

from grokexp.engine.data import make_splits, pair_table
from grokexp.engine.model import Population
from grokexp.engine.sweep import expand_members
from grokexp.engine.train import EvalContext, Hook, TrainData, train
from grokexp.spec.io import validate_spec


class _Clock(Hook):
    def __init__(self) -> None:
        self.start = self.cpu_start = 0.0

    def on_evaluation(self, ctx: EvalContext, values: dict[str, list[float]]) -> None:
        if ctx.epoch == 0:
            self.start, self.cpu_start = time.perf_counter(), time.process_time()


def population_epochs(k: int, epochs: int, device: str = "cpu") -> tuple[float, float]:
    """Wall and CPU (all threads) seconds per model-epoch for a population of k members."""
    spec = validate_spec({
        "name": "bench",
        "task": {"modulus": P, "train_fraction": 0.5},
        "model": {"embedding_dim": EMBED, "hidden": HIDDEN},
        "train": {"epochs": epochs, "batch_size": BATCH, "lr": LR,
                  "weight_decay": WEIGHT_DECAY, "device": device},
        "metrics": {"every": epochs},
        "sweep": {"seeds": list(range(k))},
    }, "bench")
    members = expand_members(spec)
    table = pair_table(spec.task)
    splits = make_splits(spec.task, table, [m.spec.train.split_seed for m in members])
    population = Population.from_specs([m.spec for m in members], torch.device(device))
    clock = _Clock()
    train(population, members, TrainData(table, splits), [clock])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - clock.start, time.process_time() - clock.cpu_start
    return wall / epochs / k, cpu / epochs / k


def main() -> None:
    parser = timing_args(__doc__ or "")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=0,
                        help="force this many shard threads (0: the engine's choice)")
    parser.add_argument("--shard-size", type=int, default=0,
                        help="members per shard (0: the engine's shard_size)")
    args = parser.parse_args()
    threads = set_threads(args.threads)
    if args.shard_size:
        import grokexp.engine.workers

        grokexp.engine.workers.shard_size = lambda population: args.shard_size
    if args.workers:
        import grokexp.engine.workers

        grokexp.engine.workers.worker_count = lambda population: min(args.workers, population.size)
    epochs = epochs_for(args.k, args.epochs)
    population_epochs(args.k, 1, args.device)  # warm-up
    measured = [population_epochs(args.k, epochs, args.device) for _ in range(args.repeats)]
    times = [wall for wall, _ in measured]
    emit({"system": "grokexp", "k": args.k, "threads": threads, "epochs": epochs,
          "workers": args.workers or None, "shard_size": args.shard_size or None,
          "device": args.device, "s_per_model_epoch": median(times), "all": times,
          "cpu_s_per_model_epoch": median([cpu for _, cpu in measured]),
          "peak_rss_mib": peak_rss_mib()})


if __name__ == "__main__":
    main()
