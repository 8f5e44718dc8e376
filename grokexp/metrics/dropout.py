"""Test accuracy under dropout used as a probe: MC-dropout mean/variance and the DRC.

The weights are frozen; each of M stochastic copies of every member draws its own dropout
masks at the chosen sites and is scored on that member's test pairs. All copies run batched,
(K, M·N, ·) per layer (chunked over M only to bound memory), never a loop over samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from ..model import _ACTIVATIONS, Architecture, embedded, first_preactivation

__all__ = ["dropout_accuracies", "mc_dropout_accuracy", "dropout_robustness", "SITES",
           "CHUNK_FLOATS"]

SITES = ("embedding", "hidden")
CHUNK_FLOATS = 2**20  # widest activation of one chunk: 4 MB of float32
QUANTUM = 2**16  # dropout rates are exact to 1/QUANTUM (16 random bits per unit)


def _drop_(x: torch.Tensor, rates: torch.Tensor, generator: torch.Generator) -> None:
    """Dropout in place on x (K, c, N, F): copy j of each member drops with ``rates[j]``.

    Each unit draws 16 random bits (four per 64-bit draw, about a tenth of the cost of a
    float ``rand``) and is dropped when they fall below ``rates[j]``·2¹⁶, so the rate is
    exact to 2⁻¹⁶; survivors are scaled by 1/(1 − that rate).
    """
    words = -(-x.numel() // 4)
    bits = torch.randint(-(2**63), 2**63 - 1, (words,), dtype=torch.int64,
                         generator=generator, device=generator.device)
    units = bits.view(torch.int16)[: x.numel()].view(x.shape).to(x.device)  # (K, c, N, F)
    cut = (rates.to(x.device) * QUANTUM).round()  # (c,) dropped out of QUANTUM
    kept = units >= (cut - QUANTUM // 2).to(torch.int16).view(1, -1, 1, 1)
    x.mul_(kept.to(x.dtype).mul_((QUANTUM / (QUANTUM - cut)).view(1, -1, 1, 1)))


@torch.no_grad()
def dropout_accuracies(params: Mapping[str, torch.Tensor], arch: Architecture,
                       left: torch.Tensor, right: torch.Tensor, labels: torch.Tensor,
                       rates: torch.Tensor, sites: Sequence[str],
                       generator: torch.Generator) -> torch.Tensor:
    """Accuracy of M dropout copies of each member on its own pairs: (K, M).

    ``left``/``right``/``labels`` are (K, N) per member (its test pairs); ``rates`` is (M,),
    copy m drops units with probability ``rates[m]`` at every site in ``sites``. The forward
    pass is model.py's, laid out as (K, c·N, ·) so each member's weights multiply all of its
    c copies in one batched matmul; without the embedding site the first layer is computed
    once per member and shared by its copies.
    """
    k, n = left.shape
    m = int(rates.shape[0])
    act = _ACTIVATIONS[arch.activation]
    widest = max(2 * arch.embedding_dim, *arch.hidden, arch.modulus)
    chunk = max(1, min(m, CHUNK_FLOATS // max(1, k * n * widest)))
    if "embedding" in sites:
        emb = embedded(params, arch)  # (K, P, d)
        d = emb.shape[2]
        index = torch.cat([left, right], dim=1)[..., None].expand(-1, -1, d)  # (K, 2N, d)
        rows = torch.gather(emb, 1, index)
        inputs = torch.cat([rows[:, :n], rows[:, n:]], dim=2)  # (K, N, 2d)
    else:
        shared = act(first_preactivation(params, arch, left, right))  # (K, N, H)
    out = []
    for start in range(0, m, chunk):
        part = rates[start:start + chunk]  # (c,)
        c = int(part.shape[0])
        if "embedding" in sites:
            x = inputs[:, None].expand(k, c, n, inputs.shape[2]).contiguous()  # (K, c, N, 2d)
            _drop_(x, part, generator)
            h = act(torch.baddbmm(params["hidden.0.bias"][:, None, :], x.view(k, c * n, -1),
                                  params["hidden.0.weight"]))  # (K, c·N, H)
        else:
            h = shared[:, None].expand(k, c, n, shared.shape[2]).reshape(k, c * n, -1)
        for layer in range(len(arch.hidden)):
            if layer > 0:
                h = act(torch.baddbmm(params[f"hidden.{layer}.bias"][:, None, :], h,
                                      params[f"hidden.{layer}.weight"]))
            if "hidden" in sites:
                _drop_(h.view(k, c, n, -1), part, generator)
        scores = torch.baddbmm(params["output.bias"][:, None, :], h,
                               params["output.weight"])  # (K, c·N, P)
        correct = scores.view(k, c, n, -1).argmax(-1) == labels[:, None, :]  # (K, c, N)
        out.append(correct.float().mean(2))
    return torch.cat(out, dim=1)  # (K, M)


def mc_dropout_accuracy(params: Mapping[str, torch.Tensor], arch: Architecture,
                        left: torch.Tensor, right: torch.Tensor, labels: torch.Tensor,
                        rate: float, samples: int, sites: Sequence[str],
                        generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """MC-dropout test accuracy: mean and (unbiased) variance over S passes, each (K,).

    The paper (Fig. 1) reads a rise of this variance as the onset of grokking: a memorising
    network is wrong whatever is dropped, a generalised one right whatever is dropped, and in
    between the answer depends on which units survive.
    """
    rates = torch.full((samples,), float(rate), device=params["embedding"].device)
    acc = dropout_accuracies(params, arch, left, right, labels, rates, sites, generator)
    return acc.mean(1), acc.var(1)


def dropout_robustness(params: Mapping[str, torch.Tensor], arch: Architecture,
                       left: torch.Tensor, right: torch.Tensor, labels: torch.Tensor,
                       rates: Sequence[float], samples: int, sites: Sequence[str],
                       generator: torch.Generator) -> torch.Tensor:
    """Dropout Robustness Curve: mean test accuracy at each rate, (K, R).

    A generalised network keeps its test accuracy up to a sizeable rate (the paper: ≈0.2 with
    little loss, degrading past 0.5); one in transition loses it at the smallest rates.
    """
    per_rate = torch.tensor([float(r) for r in rates], device=params["embedding"].device)
    copies = per_rate.repeat_interleave(samples)  # (R·S,)
    acc = dropout_accuracies(params, arch, left, right, labels, copies, sites, generator)
    return acc.view(acc.shape[0], len(rates), samples).mean(2)  # (K, R)
