"""Per-member statistics of every parameter tensor: the paper's distribution diagnostics.

Paper Figs. 4, 6–8: the mean of each layer's values drifts to (or away from) zero and its
spread first contracts, then widens and saturates as the network memorises and then groks.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .embedding import bimodality_coefficient, two_peaks

__all__ = ["metric_prefix", "parameter_stats", "embedding_shape", "histograms"]


def metric_prefix(name: str, hidden_layers: int | None = None) -> str:
    """A parameter's metric name: '.' → '_' ('blocks.0.attn.w_q' → 'blocks_0_attn_w_q').

    ``hidden_layers`` is the paper MLP's hidden layer count, whose names stay the paper's:
    'hidden.0.weight' → 'hidden_weight' (one hidden layer) or 'hidden_0_weight' (more).
    """
    if hidden_layers == 1:
        name = name.replace("hidden.0.", "hidden.")
    return name.replace(".", "_")


def parameter_stats(params: Mapping[str, torch.Tensor],
                    hidden_layers: int | None = None) -> dict[str, torch.Tensor]:
    """``<prefix>_mean`` and ``<prefix>_std`` of every parameter, each (K,) (the prefix:
    :func:`metric_prefix`).

    The standard deviation is the population one (all values of that member's tensor).
    """
    out: dict[str, torch.Tensor] = {}
    for name, tensor in params.items():
        flat = tensor.detach().flatten(1).float()  # (K, n)
        prefix = metric_prefix(name, hidden_layers)
        out[f"{prefix}_mean"] = flat.mean(1)
        out[f"{prefix}_std"] = flat.std(1, correction=0)
    return out


def embedding_shape(embedding: torch.Tensor) -> dict[str, torch.Tensor]:
    """Bimodality coefficient and the two peak locations of the embedding values, each (K,)."""
    flat = embedding.detach().flatten(1).float()  # (K, P·d)
    low, high = two_peaks(flat)
    return {"embedding_bimodality": bimodality_coefficient(flat),
            "embedding_peak_low": low, "embedding_peak_high": high}


def histograms(tensor: torch.Tensor, bins: int = 60,
               limits: tuple[float, float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Density histograms of each member's values on shared edges: (K, bins), (bins + 1,).

    The edges span ``limits`` (default: the range over all members) so members compare.
    """
    flat = tensor.detach().flatten(1).float().cpu()  # (K, n)
    lo, hi = limits if limits is not None else (float(flat.min()), float(flat.max()))
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = torch.linspace(lo, hi, bins + 1)
    width = (hi - lo) / bins
    idx = ((flat - lo) / width).long().clamp(0, bins - 1)
    counts = torch.zeros(flat.shape[0], bins).scatter_add_(1, idx, torch.ones_like(flat))
    return counts / (flat.shape[1] * width), edges
