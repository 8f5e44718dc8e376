"""Cheap progress measures that may warn of grokking before the test accuracy moves.

The total weight norm is the quantity of the delay law (T_grok − T_mem ≈
log(‖θ_mem‖² / ‖θ*‖²) / (c · lr · wd)): weight decay shrinks it until a generalising solution
of small norm wins. The Fourier share follows Nanda et al.: a network that groks modular
addition builds its token embedding from a few key frequencies along the token axis.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

__all__ = ["weight_norm", "fourier_power_share", "FOURIER_TOP"]

FOURIER_TOP = 5  # key frequencies counted (Nanda et al. found about five for P = 113)


def weight_norm(params: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """‖θ‖: the Euclidean norm of all of a member's parameters together, (K,).

    Frozen tensors count too: they are part of θ and of the function the network computes.
    """
    total: torch.Tensor | None = None
    for tensor in params.values():
        sq = tensor.detach().double().flatten(1).pow(2).sum(1)  # (K,)
        total = sq if total is None else total + sq
    assert total is not None, "no parameters"
    return total.sqrt().float()


def fourier_power_share(embedding: torch.Tensor, top: int = FOURIER_TOP) -> torch.Tensor:
    """Share of the embedding's non-constant power in its ``top`` strongest frequencies, (K,).

    E (K, P, d) is transformed along the token axis; the power of frequency f is
    Σ_d |F_f|², and f and P − f (complex conjugates for a real table) form one frequency
    k = min(f, P − f), k = 1 … ⌊P/2⌋. The constant component (k = 0, the mean token) is left
    out: it says nothing of the token's value. 1 when the table is built from ``top``
    frequencies or fewer; about top / ⌊P/2⌋ for white noise; 0 for a constant table.
    """
    _, p, _ = embedding.shape
    spectrum = torch.fft.fft(embedding.detach().double(), dim=1)  # (K, P, d)
    power = spectrum.abs().pow(2).sum(2)  # (K, P)
    f = torch.arange(p, device=embedding.device)
    k = torch.minimum(f, p - f)  # (P,): the frequency each FFT bin belongs to
    folded = torch.zeros(power.shape[0], p // 2 + 1, dtype=power.dtype, device=power.device)
    folded.index_add_(1, k, power)  # (K, ⌊P/2⌋ + 1)
    everything = folded.sum(1)  # the constant component included
    folded = folded[:, 1:]
    total = folded.sum(1)
    strongest = folded.topk(min(top, folded.shape[1]), dim=1).values.sum(1)
    varies = total > 1e-12 * everything  # else only the FFT's rounding varies: a constant table
    return torch.where(varies, strongest / total.clamp_min(torch.finfo(total.dtype).tiny),
                       torch.zeros_like(total)).float()
