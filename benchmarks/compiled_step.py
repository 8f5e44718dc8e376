"""What ``torch.compile`` would give the engine's training step on the CPU: an experiment.

The engine trains a population in shards, one shard of members per thread (the paper's model:
2 members per shard, engine/workers.py). This times one shard on one thread (``--threads``
for more intra-op threads), two ways:

- the engine: ``TrainStep.step`` (engine/step.py, hand-written gradients into preallocated
  buffers) and ``PopulationAdamW.step`` (fused AdamW), as ``Shard.epoch`` calls them;
- the same step written as one pure function (forward, the same hand-written gradients,
  torch.optim.AdamW's update) under ``torch.compile``, which fuses the pointwise work, the
  gathers and the optimiser around the matmuls.

Before anything is timed, one step of each from the same weights and minibatch must agree
(the compiled gradients and updated weights against the engine's), so both time the same
arithmetic. Compilation is timed apart (an epoch has two minibatch shapes: 10 × 128 and 124).

    python benchmarks/compiled_step.py [--k 2] [--epochs 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import BATCH, EMBED, HIDDEN, LR, WEIGHT_DECAY, P, emit

from grokexp.engine.data import make_splits, pair_table
from grokexp.engine.model import Population
from grokexp.engine.step import TrainStep
from grokexp.engine.sweep import expand_members
from grokexp.engine.train import _optimizer
from grokexp.spec.io import validate_spec

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # the spec's defaults (train.betas, train.eps)


def _setup(k: int):
    spec = validate_spec({
        "name": "bench", "task": {"modulus": P, "train_fraction": 0.5},
        "model": {"embedding_dim": EMBED, "hidden": HIDDEN},
        "train": {"batch_size": BATCH, "lr": LR, "weight_decay": WEIGHT_DECAY},
        "sweep": {"seeds": list(range(k))},
    }, "bench")
    members = expand_members(spec)
    table = pair_table(spec.task)
    splits = make_splits(spec.task, table, [m.spec.train.split_seed for m in members])
    population = Population.from_specs([m.spec for m in members], torch.device("cpu"))
    return members, table, splits, population


def _epoch_order(table, splits, generator: torch.Generator):
    """One epoch's shuffled (K, N_train) operands and labels (each member its own order)."""
    train_index = splits.train_index
    perms = torch.stack([torch.randperm(train_index.shape[1], generator=generator)
                         for _ in range(train_index.shape[0])])
    rows = torch.gather(train_index, 1, perms)
    return table.left[rows], table.right[rows], table.labels[rows]


def grads_of(emb, w0, b0, w1, b1, left, right, labels):
    """The gradients of the sum over members of each one's mean cross-entropy, written out as
    engine/step.py does (per-token tables, gather, hand-written backward): (K, ...) each."""
    k, p, d = emb.shape
    h = w0.shape[-1]
    b = left.shape[1]
    tables = torch.bmm(emb.repeat(1, 2, 1).view(2 * k, p, d), w0.view(2 * k, d, h))
    tables = tables.view(k, 2, p, h)
    t_left, t_right = tables[:, 0] + b0[:, None], tables[:, 1]
    li, ri = left[..., None].expand(k, b, h), right[..., None].expand(k, b, h)
    act = (torch.gather(t_left, 1, li) + torch.gather(t_right, 1, ri)).clamp_min(0.0)
    logits = torch.baddbmm(b1[:, None], act, w1)
    g = (torch.softmax(logits, -1) - torch.nn.functional.one_hot(labels, p).float()) / b
    g_w1, g_b1 = torch.bmm(act.transpose(1, 2), g), g.sum(1)
    dh = torch.bmm(g, w1.transpose(1, 2)) * (act > 0)
    d_left = torch.zeros(k, p, h).scatter_add_(1, li, dh)
    d_right = torch.zeros(k, p, h).scatter_add_(1, ri, dh)
    g_w0 = torch.cat([torch.bmm(emb.transpose(1, 2), d_left),
                      torch.bmm(emb.transpose(1, 2), d_right)], 1)
    g_emb = (torch.bmm(d_left, w0[:, :d].transpose(1, 2))
             + torch.bmm(d_right, w0[:, d:].transpose(1, 2)))
    return g_emb, g_w0, d_left.sum(1), g_w1, g_b1


def train_step(params, exp_avg, exp_avg_sq, left, right, labels, bias1, bias2_sqrt):
    """One step as a pure function: the gradients, then torch.optim.AdamW's update (bias
    corrections passed in as tensors, so the step count does not recompile)."""
    grads = grads_of(*params, left, right, labels)
    out_p, out_m, out_v = [], [], []
    for p, g, m, v in zip(params, grads, exp_avg, exp_avg_sq, strict=True):
        p = p * (1 - LR * WEIGHT_DECAY)
        m = m + (g - m) * (1 - BETA1)
        v = v * BETA2 + g * g * (1 - BETA2)
        p = p - (LR / bias1) * m / (v.sqrt() / bias2_sqrt + EPS)
        out_p.append(p)
        out_m.append(m)
        out_v.append(v)
    return out_p, out_m, out_v


NAMES = ("embedding", "hidden.0.weight", "hidden.0.bias", "output.weight", "output.bias")


@torch.no_grad()
def check_agreement(k: int) -> None:
    """One step from the same weights and minibatch: the compiled gradients and weights
    must match the engine's (float32 sums in another order: rtol 1e-4, atol 1e-6)."""
    members, table, splits, population = _setup(k)
    before = [population.params[n].detach().clone() for n in NAMES]
    params = {n: t.detach() for n, t in population.params.items()}
    step = TrainStep(population.arch, params, BATCH)
    optimizer = _optimizer(population, members)
    left, right, labels = _epoch_order(table, splits, torch.Generator().manual_seed(0))
    step.step(params, step.plan(left, right, labels)[0])
    optimizer.step(step.grads)
    first = (left[:, :BATCH], right[:, :BATCH], labels[:, :BATCH])
    grads = torch.compile(grads_of, dynamic=False)(*before, *first)
    for name, value in zip(NAMES, grads, strict=True):
        torch.testing.assert_close(value, step.grads[name], rtol=1e-4, atol=1e-6,
                                   msg=lambda m, n=name: f"gradient of {n}: {m}")
    zeros = [torch.zeros_like(t) for t in before]
    after, _, _ = torch.compile(train_step, dynamic=False)(
        before, zeros, [z.clone() for z in zeros], *first, torch.tensor(1 - BETA1),
        torch.tensor((1 - BETA2) ** 0.5))
    for name, value in zip(NAMES, after, strict=True):
        torch.testing.assert_close(value, params[name], rtol=1e-4, atol=1e-6,
                                   msg=lambda m, n=name: f"{n} after one step: {m}")


@torch.no_grad()
def engine_seconds(k: int, epochs: int) -> float:
    """Seconds per member-epoch of the engine's step and optimiser on one shard."""
    members, table, splits, population = _setup(k)
    params = {n: t.detach() for n, t in population.params.items()}
    step = TrainStep(population.arch, params, BATCH)
    optimizer = _optimizer(population, members)
    generator = torch.Generator().manual_seed(1)
    orders = [_epoch_order(table, splits, generator) for _ in range(epochs + 1)]
    plans = [step.plan(*order) for order in orders]
    for batch in plans[0]:  # warm-up
        step.step(params, batch)
        optimizer.step(step.grads)
    start = time.perf_counter()
    for plan in plans[1:]:
        for batch in plan:
            step.step(params, batch)
            optimizer.step(step.grads)
    return (time.perf_counter() - start) / epochs / k


@torch.no_grad()
def compiled_seconds(k: int, epochs: int) -> tuple[float, float]:
    """Seconds per member-epoch of the compiled pure step, and seconds of compilation."""
    _, table, splits, population = _setup(k)
    params = [population.params[n].detach().clone() for n in NAMES]
    exp_avg = [torch.zeros_like(t) for t in params]
    exp_avg_sq = [torch.zeros_like(t) for t in params]
    compiled = torch.compile(train_step, dynamic=False)
    generator = torch.Generator().manual_seed(1)
    orders = [_epoch_order(table, splits, generator) for _ in range(epochs + 1)]
    count = 0

    def epoch(order) -> None:
        nonlocal params, exp_avg, exp_avg_sq, count
        left, right, labels = order
        for s in range(0, left.shape[1], BATCH):
            count += 1
            bias1 = torch.tensor(1 - BETA1**count)
            bias2_sqrt = torch.tensor((1 - BETA2**count) ** 0.5)
            params, exp_avg, exp_avg_sq = compiled(
                params, exp_avg, exp_avg_sq, left[:, s:s + BATCH], right[:, s:s + BATCH],
                labels[:, s:s + BATCH], bias1, bias2_sqrt)

    start = time.perf_counter()
    epoch(orders[0])  # compiles both minibatch shapes
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for order in orders[1:]:
        epoch(order)
    return (time.perf_counter() - start) / epochs / k, compile_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=2, help="members in the shard (engine: 2)")
    parser.add_argument("--epochs", type=int, default=30, help="timed epochs per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="alternating repeats, best of")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    check_agreement(args.k)
    # the two sides alternate, repeat after repeat, so that a change in the machine's speed
    # during the run (seen here: 1.5x within minutes) falls on both alike; best of each
    eager_runs: list[float] = []
    runs: list[tuple[float, float]] = []
    for _ in range(args.repeats):
        eager_runs.append(engine_seconds(args.k, args.epochs))
        runs.append(compiled_seconds(args.k, args.epochs))
    eager, compiled = min(eager_runs), min(s for s, _ in runs)
    print(f"torch.compile of the step (one shard of {args.k}, {args.threads} thread(s)): "
          f"the engine {eager * 1e3:.2f} ms per member-epoch, the compiled pure step "
          f"{compiled * 1e3:.2f} ms ({eager / compiled:.2f}x), after {runs[0][1]:.0f} s of "
          f"compilation (gradients and weights checked against the engine's first)",
          flush=True)
    emit({"bench": "compiled_step", "k": args.k, "threads": args.threads,
          "engine_s_per_member_epoch": eager,
          "compiled_s_per_member_epoch": compiled, "compile_s": runs[0][1]})


if __name__ == "__main__":
    main()
