"""Test accuracy under dropout used as a probe: MC-dropout mean/variance and the DRC.

The weights are frozen; each of M stochastic copies (passes) of every member draws its own
dropout masks at the chosen sites and is scored on that member's test pairs. The passes run
through the architecture's own forward (``Architecture.forward`` with keep-masks), c of them
at a time laid out as ``(K, c·N, 2)`` pairs, chunked over the passes only to bound memory.
An architecture may offer a faster path that gives the same values (``dropout_passes``: the
paper's MLP shares its first layer between passes, ``engine/arch/mlp_probe.py``); there is no
forward here.

Each member draws from its own generator, pass after pass, and within a pass mask after mask
in the order of ``arch.mask_shapes`` (a site not chosen draws nothing), so a member's values
depend on its weights, its pairs and its generator alone: not on the chunk size, nor on who
else is in the population, nor on which path computed them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import torch

from ...engine.arch.base import Architecture

__all__ = ["dropout_accuracies", "mc_dropout_accuracy", "dropout_robustness",
           "CHUNK_FLOATS", "keep_mask"]

CHUNK_FLOATS = 2**20  # widest activation of one chunk: 4 MB of float32
QUANTUM = 2**16  # dropout rates are exact to 1/QUANTUM (16 random bits per unit)

# one chunk's keep-masks (one (K, c, N, ...) per chosen mask) and its passes' survivor scales
# (c,) → the chunk's logits (K, c·N, C)
Passes = Callable[[Sequence[torch.Tensor], torch.Tensor], torch.Tensor]


def keep_mask(shape: tuple[int, ...], rate: float, generator: torch.Generator,
              out: torch.Tensor | None = None,
              words: torch.Tensor | None = None) -> torch.Tensor:
    """Which units of one pass survive dropout at ``rate``: a bool tensor of ``shape``.

    Each unit draws 16 random bits (four per 64-bit draw, about a tenth of the cost of a
    float ``rand``) and is dropped when they fall below ``rate``·2¹⁶, so the rate is exact to
    2⁻¹⁶. One call draws ⌈numel/4⌉ words from ``generator``, whatever else is drawn around it.
    ``out`` (of ``shape``; a float one gets 1.0 and 0.0, which multiplies several times faster
    here than ``masked_fill_`` or ``where`` with a bool mask) receives the mask instead of a
    new tensor, and ``words`` (int64, ⌈numel/4⌉ of them) the random words: the same draws.
    """
    numel = math.prod(shape)
    bits = torch.randint(-(2**63), 2**63 - 1, (-(-numel // 4),), dtype=torch.int64,
                         generator=generator, device=generator.device, out=words)
    units = bits.view(torch.int16)[:numel].view(shape)
    cut = round(rate * QUANTUM)  # units dropped out of QUANTUM
    if out is None:
        return units >= cut - QUANTUM // 2
    return torch.ge(units, cut - QUANTUM // 2, out=out)


def _survivor_scale(rates: torch.Tensor) -> torch.Tensor:
    """1 / (1 − rate) for each pass, with the rate as :func:`keep_mask` quantises it: (c,)."""
    cut = (rates.double() * QUANTUM).round()
    return (QUANTUM / (QUANTUM - cut)).float()


class _KeepMasks:
    """One chunk's keep-masks (1.0 kept, 0.0 dropped), drawn into buffers allocated once at
    the widest chunk and viewed as a prefix for a shorter last one."""

    def __init__(self, k: int, c: int, shapes: Sequence[tuple[int, ...]], like: torch.Tensor):
        """Masks of one member's ``shapes`` (each (N, ...)) for K members and up to c passes,
        of ``like``'s dtype and device (the weights')."""
        self.k, self.shapes = k, list(shapes)
        sizes = [math.prod(s) for s in self.shapes]
        self.keep = [torch.empty(k * c * size, dtype=like.dtype, device=like.device)
                     for size in sizes]
        self.words = torch.empty(-(-max(sizes, default=1) // 4), dtype=torch.int64,
                                 device=like.device)

    def draw(self, generators: Sequence[torch.Generator],
             rates: Sequence[float]) -> list[torch.Tensor]:
        """Member k draws from ``generators[k]`` pass after pass, and within a pass mask
        after mask: one (K, c, *shape) tensor per mask."""
        c = len(rates)
        masks = [buf[: self.k * c * math.prod(s)].view(self.k, c, *s)
                 for buf, s in zip(self.keep, self.shapes, strict=True)]
        for member, generator in enumerate(generators):
            for copy, rate in enumerate(rates):
                for mask, shape in zip(masks, self.shapes, strict=True):
                    words = self.words[: -(-math.prod(shape) // 4)]
                    keep_mask(shape, rate, generator, mask[member, copy], words)
        return masks


def forward_passes(arch: Architecture, params: Mapping[str, torch.Tensor],
                   pairs: torch.Tensor, sites: Collection[str]) -> Passes:
    """Chunks of dropout passes through ``arch.forward``: each pass's pairs repeated along the
    pair axis, each chosen mask times its pass's scale, a site not chosen multiplied by 1."""
    k, n, _ = pairs.shape
    entries = arch.mask_shapes(n)

    def run(keeps: Sequence[torch.Tensor], scales: torch.Tensor) -> torch.Tensor:
        c = int(scales.shape[0])
        tiled = pairs[:, None].expand(k, c, n, 2).reshape(k, c * n, 2)
        chosen = iter([keep * scales.view(1, c, *[1] * (keep.dim() - 2)) for keep in keeps])
        calls = iter(entries)
        one = torch.ones((), dtype=scales.dtype, device=scales.device)

        def masks(site: str, shape: tuple[int, ...]) -> torch.Tensor:
            want, member_shape = next(calls, (None, ()))
            if site != want or tuple(shape) != (k, c * n, *member_shape[1:]):
                raise ValueError(f"{arch.name}: the forward asked for a mask {site} "
                                 f"{tuple(shape)}, its mask_shapes say {want} {member_shape}")
            return next(chosen).reshape(shape) if site in sites else one.expand(shape)

        logits = arch.forward(params, tiled, masks if keeps else None).logits
        if keeps and next(calls, None) is not None:
            raise ValueError(f"{arch.name}: the forward drew fewer masks than mask_shapes")
        return logits

    return run


@torch.no_grad()
def dropout_accuracies(params: Mapping[str, torch.Tensor], arch: Architecture,
                       left: torch.Tensor, right: torch.Tensor, labels: torch.Tensor,
                       rates: torch.Tensor, sites: Sequence[str],
                       generators: Sequence[torch.Generator], fast: bool = True
                       ) -> torch.Tensor:
    """Accuracy of M dropout copies of each member on its own pairs: (K, M).

    ``left``/``right``/``labels`` are (K, N) per member (its test pairs); ``rates`` is (M,),
    copy m drops units with probability ``rates[m]`` at every mask of the sites in ``sites``
    (the architecture's dropout sites, ``metrics.mc_sites``); ``generators`` holds one
    generator per member. The passes run c at a time through the architecture's forward, or
    its ``dropout_passes`` where it has one (``fast``; False: through the forward anyway, to
    check the one against the other).
    """
    k, n = left.shape
    if len(generators) != k:
        raise ValueError(f"{len(generators)} generators for {k} members")
    unknown = [site for site in sites if site not in arch.sites]
    if unknown:
        raise ValueError(f"{arch.name} has no dropout site {', '.join(unknown)} "
                         f"(its sites: {', '.join(arch.sites)})")
    m = int(rates.shape[0])
    entries = arch.mask_shapes(n)
    widest = max([math.prod(shape[1:]) for _, shape in entries] + [arch.n_classes])
    chunk = max(1, min(m, CHUNK_FLOATS // max(1, k * n * widest)))
    like = next(iter(params.values()))
    masks = _KeepMasks(k, chunk, [shape for site, shape in entries if site in sites], like)
    pairs = torch.stack([left, right], dim=2)  # (K, N, 2)
    factory: Any = getattr(arch, "dropout_passes", None) if fast else None
    passes: Passes = (factory(params, pairs, sites, chunk) if factory is not None
                      else forward_passes(arch, params, pairs, sites))
    predicted = torch.empty(k * chunk * n, dtype=torch.int64, device=left.device)
    out = []
    for start in range(0, m, chunk):
        part = rates[start:start + chunk]  # (c,)
        c = int(part.shape[0])
        scales = _survivor_scale(part).to(left.device)
        scores = passes(masks.draw(generators, part.tolist()), scales)  # (K, c·N, C)
        best = torch.argmax(scores, -1, out=predicted[: k * c * n].view(k, c * n))
        correct = best.view(k, c, n) == labels[:, None, :]  # (K, c, N)
        out.append(correct.float().mean(2))
    return torch.cat(out, dim=1)  # (K, M)


def mc_dropout_accuracy(params: Mapping[str, torch.Tensor], arch: Architecture,
                        left: torch.Tensor, right: torch.Tensor, labels: torch.Tensor,
                        rate: float, samples: int, sites: Sequence[str],
                        generators: Sequence[torch.Generator], fast: bool = True
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """MC-dropout test accuracy: mean and (unbiased) variance over S passes, each (K,).

    The paper (Fig. 1) reads a rise of this variance as the onset of grokking: a memorising
    network is wrong whatever is dropped, a generalised one right whatever is dropped, and in
    between the answer depends on which units survive.
    """
    rates = torch.full((samples,), float(rate), device=left.device)
    acc = dropout_accuracies(params, arch, left, right, labels, rates, sites, generators, fast)
    return acc.mean(1), acc.var(1)


def dropout_robustness(params: Mapping[str, torch.Tensor], arch: Architecture,
                       left: torch.Tensor, right: torch.Tensor, labels: torch.Tensor,
                       rates: Sequence[float], samples: int, sites: Sequence[str],
                       generators: Sequence[torch.Generator], fast: bool = True
                       ) -> torch.Tensor:
    """Dropout Robustness Curve: mean test accuracy at each rate, (K, R).

    A generalised network keeps its test accuracy up to a sizeable rate (the paper: ≈0.2 with
    little loss, degrading past 0.5); one in transition loses it at the smallest rates.
    """
    per_rate = torch.tensor([float(r) for r in rates], device=left.device)
    copies = per_rate.repeat_interleave(samples)  # (R·S,)
    acc = dropout_accuracies(params, arch, left, right, labels, copies, sites, generators,
                             fast)
    return acc.view(acc.shape[0], len(rates), samples).mean(2)  # (K, R)
