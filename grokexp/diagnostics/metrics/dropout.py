"""Test accuracy under dropout used as a probe: MC-dropout mean/variance and the DRC.

The weights are frozen; each of M stochastic copies (passes) of every member draws its own
dropout masks at the chosen sites and is scored on that member's test pairs. All copies run
batched, (K, c·N, ·) per layer, chunked over the passes only to bound memory.

Each member draws from its own generator, pass after pass in a fixed order (the embedding
site, then each hidden layer), so a member's values depend on its weights, its pairs and its
generator alone: not on the chunk size, nor on who else is in the population.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from ...engine.model import (
    _ACTIVATIONS,
    Architecture,
    activate_,
    embedded,
    first_preactivation,
)

__all__ = ["dropout_accuracies", "mc_dropout_accuracy", "dropout_robustness", "SITES",
           "CHUNK_FLOATS", "keep_mask"]

SITES = ("embedding", "hidden")
CHUNK_FLOATS = 2**20  # widest activation of one chunk: 4 MB of float32
QUANTUM = 2**16  # dropout rates are exact to 1/QUANTUM (16 random bits per unit)


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


class _ChunkBuffers:
    """The tensors of one chunk of passes, allocated once per call at the widest chunk and
    viewed as a prefix for a shorter last one: a fresh multi-megabyte tensor per op costs
    page faults and copies comparable to the chunk's matmuls."""

    def __init__(self, k: int, c: int, n: int, widths: Sequence[int], arch: Architecture,
                 like: torch.Tensor):
        """Buffers for K members, chunks of up to c passes over N pairs each, of ``like``'s
        dtype and device (the weights')."""
        self.k, self.n = k, n
        device = like.device

        def flat(width: int) -> torch.Tensor:
            return torch.empty(k * c * n * width, dtype=like.dtype, device=device)

        self.widths = list(widths)
        self.keep = [flat(w) for w in widths]  # per site, 1.0 kept and 0.0 dropped
        self.words = torch.empty(-(-n * max(widths, default=1) // 4), dtype=torch.int64,
                                 device=device)
        self.x = flat(2 * arch.embedding_dim)
        self.hidden = [flat(h) for h in arch.hidden]
        self.scores = flat(arch.modulus)
        self.predicted = torch.empty(k * c * n, dtype=torch.int64, device=device)

    @staticmethod
    def view(buffer: torch.Tensor, *shape: int) -> torch.Tensor:
        return buffer[: math.prod(shape)].view(shape)

    def keep_masks(self, generators: Sequence[torch.Generator],
                   rates: Sequence[float]) -> list[torch.Tensor]:
        """Keep masks (1.0 kept, 0.0 dropped) of one chunk of passes for every member: one
        (K, c, N, F) per site width.

        Member k draws from ``generators[k]`` pass after pass, and within a pass site after
        site, so the masks a pass gets do not depend on how the passes are chunked.
        """
        c, n = len(rates), self.n
        masks = [self.view(buf, self.k, c, n, w) for buf, w in zip(self.keep, self.widths,
                                                                  strict=True)]
        for member, generator in enumerate(generators):
            for copy, rate in enumerate(rates):
                for site, width in enumerate(self.widths):
                    words = self.words[: -(-n * width // 4)]
                    keep_mask((n, width), rate, generator, masks[site][member, copy], words)
        return masks


@torch.no_grad()
def dropout_accuracies(params: Mapping[str, torch.Tensor], arch: Architecture,
                       left: torch.Tensor, right: torch.Tensor, labels: torch.Tensor,
                       rates: torch.Tensor, sites: Sequence[str],
                       generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Accuracy of M dropout copies of each member on its own pairs: (K, M).

    ``left``/``right``/``labels`` are (K, N) per member (its test pairs); ``rates`` is (M,),
    copy m drops units with probability ``rates[m]`` at every site in ``sites`` (the
    concatenated embedding the first layer reads, and each hidden layer's output);
    ``generators`` holds one generator per member. The forward pass is engine/model.py's, laid out
    as (K, c·N, ·) so each member's weights multiply all of its c copies in one batched
    matmul; without the embedding site the first layer is computed once per member and
    shared by its copies. Every chunk writes into the same buffers (``_ChunkBuffers``); the
    shared tensors are never written.
    """
    k, n = left.shape
    if len(generators) != k:
        raise ValueError(f"{len(generators)} generators for {k} members")
    m = int(rates.shape[0])
    widest = max(2 * arch.embedding_dim, *arch.hidden, arch.modulus)
    chunk = max(1, min(m, CHUNK_FLOATS // max(1, k * n * widest)))
    widths = ([2 * arch.embedding_dim] if "embedding" in sites else [])
    widths += list(arch.hidden) if "hidden" in sites else []
    buffers = _ChunkBuffers(k, chunk, n, widths, arch, params["output.weight"])
    view = buffers.view
    if "embedding" in sites:
        emb = embedded(params, arch)  # (K, P, d)
        d = emb.shape[2]
        index = torch.cat([left, right], dim=1)[..., None].expand(-1, -1, d)  # (K, 2N, d)
        rows = torch.gather(emb, 1, index)
        inputs = torch.cat([rows[:, :n], rows[:, n:]], dim=2)  # (K, N, 2d)
    else:
        shared = _ACTIVATIONS[arch.activation](
            first_preactivation(params, arch, left, right))  # (K, N, H)
    out = []
    scaled_rates: torch.Tensor | None = None  # the rates of ``scaled``, the embedding rows
    scaled = torch.empty(0)  # times 1/(1 − rate), kept while the chunks' rates stay the same
    for start in range(0, m, chunk):
        part = rates[start:start + chunk]  # (c,)
        c = int(part.shape[0])
        scale = _survivor_scale(part).to(left.device).view(1, c, 1, 1)
        masks = iter(buffers.keep_masks(generators, part.tolist()))
        if "embedding" in sites:
            if scaled_rates is None or not torch.equal(scaled_rates, part):
                # the survivors' scale before the mask (x·s·keep, bitwise x·(keep·s));
                # consecutive chunks of one rate share it
                scaled_rates, scaled = part, inputs[:, None] * scale  # (K, c, N, 2d)
            x = torch.mul(scaled, next(masks), out=view(buffers.x, *scaled.shape))
            h = torch.baddbmm(params["hidden.0.bias"][:, None, :], x.view(k, c * n, -1),
                              params["hidden.0.weight"],
                              out=view(buffers.hidden[0], k, c * n, arch.hidden[0]))
            h = activate_(arch.activation, h)  # (K, c·N, H)
        elif "hidden" in sites:  # the shared first layer, scaled into this chunk's buffer
            h = torch.mul(shared[:, None], scale,
                          out=view(buffers.hidden[0], k, c, n, arch.hidden[0]))
        else:
            h = shared[:, None].expand(k, c, n, shared.shape[2])
        h = h.reshape(k, c * n, -1)
        for layer in range(len(arch.hidden)):
            if layer > 0:
                h = torch.baddbmm(params[f"hidden.{layer}.bias"][:, None, :], h,
                                  params[f"hidden.{layer}.weight"],
                                  out=view(buffers.hidden[layer], k, c * n, arch.hidden[layer]))
                h = activate_(arch.activation, h)
            if "hidden" in sites:  # h is this chunk's own buffer
                survivors = h.view(k, c, n, -1)
                if layer > 0 or "embedding" in sites:  # (else scaled when copied above)
                    survivors.mul_(scale)
                h = survivors.mul_(next(masks)).view(k, c * n, -1)
        scores = torch.baddbmm(params["output.bias"][:, None, :], h, params["output.weight"],
                               out=view(buffers.scores, k, c * n, arch.modulus))
        predicted = torch.argmax(scores, -1, out=view(buffers.predicted, k, c * n))
        correct = predicted.view(k, c, n) == labels[:, None, :]  # (K, c, N)
        out.append(correct.float().mean(2))
    return torch.cat(out, dim=1)  # (K, M)


def mc_dropout_accuracy(params: Mapping[str, torch.Tensor], arch: Architecture,
                        left: torch.Tensor, right: torch.Tensor, labels: torch.Tensor,
                        rate: float, samples: int, sites: Sequence[str],
                        generators: Sequence[torch.Generator]
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """MC-dropout test accuracy: mean and (unbiased) variance over S passes, each (K,).

    The paper (Fig. 1) reads a rise of this variance as the onset of grokking: a memorising
    network is wrong whatever is dropped, a generalised one right whatever is dropped, and in
    between the answer depends on which units survive.
    """
    rates = torch.full((samples,), float(rate), device=params["embedding"].device)
    acc = dropout_accuracies(params, arch, left, right, labels, rates, sites, generators)
    return acc.mean(1), acc.var(1)


def dropout_robustness(params: Mapping[str, torch.Tensor], arch: Architecture,
                       left: torch.Tensor, right: torch.Tensor, labels: torch.Tensor,
                       rates: Sequence[float], samples: int, sites: Sequence[str],
                       generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Dropout Robustness Curve: mean test accuracy at each rate, (K, R).

    A generalised network keeps its test accuracy up to a sizeable rate (the paper: ≈0.2 with
    little loss, degrading past 0.5); one in transition loses it at the smallest rates.
    """
    per_rate = torch.tensor([float(r) for r in rates], device=params["embedding"].device)
    copies = per_rate.repeat_interleave(samples)  # (R·S,)
    acc = dropout_accuracies(params, arch, left, right, labels, copies, sites, generators)
    return acc.view(acc.shape[0], len(rates), samples).mean(2)  # (K, R)
