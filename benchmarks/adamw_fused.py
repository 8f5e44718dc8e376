"""The engine's AdamW step: ``torch._fused_adamw_`` called directly, against the public ways to
the same kernel, ``torch.optim.AdamW(fused=True)`` and ``torch.optim.adamw.adamw(fused=True)``.

``PopulationAdamW`` (engine/optim.py) keeps each parameter stacked over the members, (K, ...),
and gives every member its own lr, weight decay, betas and eps. The fused kernel takes one
setting per call, so the members are grouped by setting: one call per distinct setting,
over that group's member slices. The public way to the same kernel is ``torch.optim.AdamW``
with one param group per distinct setting, its params the member views ``p.detach()[k]``
(leaves sharing the population's storage) and their ``.grad`` the views of the step's
gradient buffers. The functional ``torch.optim.adamw.adamw`` (in the module's ``__all__``)
takes the engine's per-setting lists as they are, with one step tensor per slice (it adds 1
to each before the kernel). All run the paper's model (P = 53, embedding 128, hidden 256: 86k
parameters per member) on one thread, as a shard's worker does (engine/workers.py).

Before timing, ``--check`` steps (default 20) of each public way from the same weights and
gradients are compared with the engine's: "bitwise" when weights and moments are equal. Then
one optimiser step is timed ``--steps`` times per repeat, the ways alternating, best of
``--repeats`` medians; prints a table.

    python benchmarks/adamw_fused.py [--steps 200] [--repeats 5] [--check 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _common import EMBED, HIDDEN, LR, WEIGHT_DECAY, P
from torch.optim.adamw import adamw

from grokexp.engine.optim import PopulationAdamW

SHAPES = {"embedding": (P, EMBED), "hidden.0.weight": (2 * EMBED, HIDDEN),
          "hidden.0.bias": (HIDDEN,), "output.weight": (HIDDEN, P), "output.bias": (P,)}
# (population size K, how the members' lrs differ): one shard, a shard of two, a population
CASES = [(1, "one setting"), (2, "one setting"), (2, "an lr each"), (16, "one setting"),
         (16, "an lr each"), (16, "an lr each, embedding lr x10")]


def population(k: int, seed: int = 0) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Weights and one fixed set of gradients, (K, ...) each."""
    g = torch.Generator().manual_seed(seed)
    params = {n: torch.randn((k, *s), generator=g) * 0.1 for n, s in SHAPES.items()}
    grads = {n: torch.randn((k, *s), generator=g) * 1e-2 for n, s in SHAPES.items()}
    return params, grads


def settings(k: int, case: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(K,) lrs and per-parameter lr scales for a case."""
    each = "each" in case
    lr = torch.tensor([LR * (1 + i) if each else LR for i in range(k)], dtype=torch.float64)
    scale = {n: torch.full((k,), 10.0 if "x10" in case and n == "embedding" else 1.0,
                           dtype=torch.float64) for n in SHAPES}
    return lr, scale


def engine(params: dict[str, torch.Tensor], lr: torch.Tensor,
           scale: dict[str, torch.Tensor]) -> PopulationAdamW:
    k = lr.shape[0]
    return PopulationAdamW(params, lr, torch.full((k,), WEIGHT_DECAY, dtype=torch.float64),
                           {n: torch.ones(k) for n in params}, fused=True, lr_scale=scale)


def public(params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor], lr: torch.Tensor,
           scale: dict[str, torch.Tensor]) -> torch.optim.AdamW:
    """torch.optim.AdamW(fused=True), one param group per distinct (lr × scale) setting."""
    groups: dict[float, list[torch.Tensor]] = {}
    for k, rate in enumerate(lr.tolist()):
        for name, p in params.items():
            view = p.detach()[k]
            view.grad = grads[name][k]
            groups.setdefault(rate * float(scale[name][k]), []).append(view)
    return torch.optim.AdamW([{"params": ps, "lr": rate} for rate, ps in groups.items()],
                             lr=LR, weight_decay=WEIGHT_DECAY, fused=True)


class Functional:
    """``torch.optim.adamw.adamw(fused=True)`` over the engine's per-setting lists."""

    def __init__(self, opt: PopulationAdamW, grads: dict[str, torch.Tensor]):
        self.calls = []
        for (lr, wd, beta1, beta2, eps), slices in opt._groups():
            lists = [[source[n][k] for n, k in slices]
                     for source in (opt.params, grads, opt.exp_avg, opt.exp_avg_sq)]
            steps = [torch.zeros(()) for _ in slices]  # each its own: adamw adds 1 to each
            self.calls.append((lists, steps, dict(lr=lr, weight_decay=wd, beta1=beta1,
                                                  beta2=beta2, eps=eps)))

    def step(self) -> None:
        for (params, grads, exp_avg, exp_avg_sq), steps, settings in self.calls:
            adamw(params, grads, exp_avg, exp_avg_sq, [], steps, fused=True, amsgrad=False,
                  maximize=False, **settings)


def _moments(opt: torch.optim.AdamW | PopulationAdamW | Functional,
             params: dict[str, torch.Tensor], name: str, key: str) -> torch.Tensor:
    """(K, ...) moment ``key`` of parameter ``name``, whichever way kept it."""
    if isinstance(opt, Functional):
        raise TypeError("Functional keeps them in its PopulationAdamW")
    if isinstance(opt, PopulationAdamW):
        return getattr(opt, key)[name]
    k = params[name].shape[0]
    return torch.stack([_state(opt, params[name], i, key) for i in range(k)])


def check(k: int, case: str, steps: int, way: str) -> str:
    """The engine and one public way from the same start: 'bitwise' or what differs."""
    lr, scale = settings(k, case)
    ours_p, grads = population(k)
    theirs_p = {n: t.clone() for n, t in ours_p.items()}
    ours = engine(ours_p, lr, scale)
    kept = engine(theirs_p, lr, scale)  # holds the functional way's moments
    theirs = public(theirs_p, grads, lr, scale) if way == "class" else Functional(kept, grads)
    for _ in range(steps):
        ours.step(grads)
        theirs.step()
    for name in SHAPES:
        if not torch.equal(ours_p[name], theirs_p[name]):
            return f"weights differ ({name})"
        for key in ("exp_avg", "exp_avg_sq"):
            other = (_moments(kept, theirs_p, name, key) if way != "class"
                     else _moments(theirs, theirs_p, name, key))
            if not torch.equal(_moments(ours, ours_p, name, key), other):
                return f"{key} differs ({name})"
    return "bitwise"


def _state(opt: torch.optim.AdamW, stacked: torch.Tensor, k: int, key: str) -> torch.Tensor:
    """The moment torch.optim keeps for member k's view of ``stacked``."""
    for group in opt.param_groups:
        for p in group["params"]:
            if p.data_ptr() == stacked[k].data_ptr() and p.shape == stacked[k].shape:
                return opt.state[p][key]
    raise KeyError(k)


def time_steps(step, steps: int) -> float:
    """Median µs of one call of ``step`` over ``steps`` calls (after 5 unmeasured)."""
    for _ in range(5):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--check", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread; µs per optimiser step, best of "
          f"{args.repeats} medians of {args.steps} steps\n")
    print("| K | settings | groups | `torch._fused_adamw_` (engine) | "
          "`torch.optim.AdamW(fused=True)` | `torch.optim.adamw.adamw(fused=True)` | "
          "results |")
    print("|---:|---|---:|---:|---:|---:|---|")
    for k, case in CASES:
        lr, scale = settings(k, case)
        params, grads = population(k)
        ways = {"engine": engine(params, lr, scale)}
        ways["class"] = public({n: t.clone() for n, t in params.items()}, grads, lr, scale)
        ways["functional"] = Functional(engine({n: t.clone() for n, t in params.items()},
                                               lr, scale), grads)
        calls = {"engine": lambda o=ways["engine"], g=grads: o.step(g),
                 "class": ways["class"].step, "functional": ways["functional"].step}
        best = dict.fromkeys(calls, float("inf"))
        for _ in range(args.repeats):
            for way, call in calls.items():
                best[way] = min(best[way], time_steps(call, args.steps))
        groups = len(ways["class"].param_groups)  # type: ignore[union-attr]
        results = ", ".join(sorted({check(k, case, args.check, w)
                                    for w in ("class", "functional")}))
        print(f"| {k} | {case} | {groups} | {best['engine']:.1f} | "
              f"{best['class']:.1f} ({best['class'] / best['engine']:.2f}x) | "
              f"{best['functional']:.1f} ({best['functional'] / best['engine']:.2f}x) | "
              f"{results} |")


if __name__ == "__main__":
    main()
