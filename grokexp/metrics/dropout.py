"""Test accuracy under dropout used as a probe: MC-dropout mean/variance and the DRC.

The weights are frozen; each of M stochastic copies of every member draws its own dropout
masks at the chosen sites and is scored on that member's test pairs. All copies run as one
batched population of K·M rows (chunked only to bound memory), never a loop over samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from ..model import Architecture, DropoutMasks, logits

__all__ = ["dropout_accuracies", "mc_dropout_accuracy", "dropout_robustness", "SITES"]

SITES = ("embedding", "hidden")
_CHUNK_FLOATS = 2**24  # widest activation of one chunk: about 64 MB of float32


def _masks(rates: torch.Tensor, sites: Sequence[str], generator: torch.Generator) -> DropoutMasks:
    """Keep-masks for rows with their own rate each: ``rates`` is (R,) for R rows."""

    def masks(site: str, shape: tuple[int, ...]) -> torch.Tensor:
        if site not in sites:
            return torch.ones((), device=rates.device)
        rate = rates.view(-1, *([1] * (len(shape) - 1)))  # (R, 1, 1)
        draw = torch.rand(shape, generator=generator, device=generator.device)
        return (draw.to(rates.device) >= rate).float() / (1.0 - rate)

    return masks


@torch.no_grad()
def dropout_accuracies(params: Mapping[str, torch.Tensor], arch: Architecture,
                       left: torch.Tensor, right: torch.Tensor, labels: torch.Tensor,
                       rates: torch.Tensor, sites: Sequence[str],
                       generator: torch.Generator) -> torch.Tensor:
    """Accuracy of M dropout copies of each member on its own pairs: (K, M).

    ``left``/``right``/``labels`` are (K, N) per member (its test pairs); ``rates`` is (M,),
    copy m drops units with probability ``rates[m]`` at every site in ``sites``. Copies are
    expanded with ``repeat_interleave`` so row k·M + m is copy m of member k.
    """
    k, n = left.shape
    m = int(rates.shape[0])
    widest = max(2 * arch.embedding_dim, *arch.hidden, arch.modulus)
    chunk = max(1, min(m, _CHUNK_FLOATS // max(1, k * n * widest)))
    out = []
    for start in range(0, m, chunk):
        part = rates[start:start + chunk]  # (c,)
        c = int(part.shape[0])
        copies = {name: t.repeat_interleave(c, 0) for name, t in params.items()}  # (K·c, ...)
        row_rates = part.repeat(k)  # (K·c,)
        scores = logits(copies, arch, left.repeat_interleave(c, 0), right.repeat_interleave(c, 0),
                        _masks(row_rates, sites, generator))  # (K·c, N, P)
        correct = scores.argmax(-1) == labels.repeat_interleave(c, 0)  # (K·c, N)
        out.append(correct.float().mean(1).view(k, c))
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
