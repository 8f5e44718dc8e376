"""Fourier progress measures (Nanda et al. 2023): how much of a network's function over the
P × P grid of operand pairs is carried by a few frequencies of Z_P.

A network that groks modular addition computes with cos(2πk(a+b)/P) for a handful of *key
frequencies* k. The measures here find those frequencies in the activations at the last
ReLU site, then ask how well the logits do with only them (``restricted``: falls before the
test loss does) and without them (``excluded``: rises as the network comes to rely on them),
and how concentrated in frequency the token embedding is (its Gini coefficient rises).

Everything is pure: tensors over the grid in, (K,) values out. The basis is the real
orthonormal Fourier basis of Z_P; the 2-D basis is its outer product, so a coefficient table
is ``B X Bᵀ`` over the grid's two axes and a projection is ``Bᵀ (M ⊙ (B X Bᵀ)) B``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from ...engine.arch.base import Architecture

__all__ = ["fourier_measures", "KEY_FREQUENCY", "fourier_basis", "frequency_power",
           "key_frequencies", "component_mask", "project_grid", "split_grid", "grid_cross_entropy",
           "fourier_gini", "gini"]

KEY_FREQUENCY = "fourier_key_frequency_"  # + 1 … n: a member's key frequencies, increasing
Pairs = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # left, right, labels: (K, N) each


def fourier_basis(p: int, dtype: torch.dtype = torch.float64,
                  device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, freq): B (P, P) has one orthonormal basis function of Z_P per row (the constant
    1/√P; for k = 1 … ⌊(P−1)/2⌋ √(2/P)·cos(2πkx/P) and √(2/P)·sin(2πkx/P); for even P also
    cos(πx)/√P); ``freq`` (P,) is each row's frequency k (0 for the constant)."""
    x = torch.arange(p, dtype=torch.float64, device=device)  # cast to dtype at the end
    rows, freq = [torch.full((p,), 1.0 / math.sqrt(p), dtype=torch.float64, device=device)], [0]
    scale = math.sqrt(2.0 / p)
    for k in range(1, (p - 1) // 2 + 1):
        angle = 2.0 * math.pi * k * x / p
        rows += [scale * torch.cos(angle), scale * torch.sin(angle)]
        freq += [k, k]
    if p % 2 == 0:
        rows.append(torch.cos(math.pi * x) / math.sqrt(p))
        freq.append(p // 2)
    return torch.stack(rows).to(dtype), torch.tensor(freq, device=device)


def _both_axes(matrix: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Σ_a Σ_b M[u, a] M[v, b] X[k, a, b, f] for (K, P, P, F) X: ``matrix`` applied along
    both grid axes, as two plain matmuls (a three-operand einsum was slower here)."""
    k, p, _, f = grid.shape
    first = torch.matmul(matrix, grid.reshape(k, p, p * f)).view(k, p, p, f)  # (K, u, b, F)
    swapped = first.transpose(1, 2).reshape(k, p, p * f)  # (K, b, u·F)
    return torch.matmul(matrix, swapped).view(k, p, p, f).transpose(1, 2)  # (K, u, v, F)


def _coefficients(grid: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """(K, P, P, F) values over the grid → their (K, P, P, F) coefficients on the 2-D basis
    (row u, column v: the function u(a)·v(b))."""
    return _both_axes(basis, grid)


def _pair_masks(freq: torch.Tensor, p: int) -> torch.Tensor:
    """(⌊P/2⌋ + 1, P, P) bool: for each frequency k, the 2-D basis functions whose frequency
    pair is (k, 0), (0, k) or (k, k) (for k = 0 the constant alone)."""
    ks = torch.arange(p // 2 + 1, device=freq.device)[:, None, None]
    fu, fv = freq[None, :, None], freq[None, None, :]
    return (((fu == ks) & (fv == 0)) | ((fu == 0) & (fv == ks))
            | ((fu == ks) & (fv == ks)))


def frequency_power(activations: torch.Tensor) -> torch.Tensor:
    """(K, ⌊P/2⌋): the power of each frequency k = 1 … ⌊P/2⌋ in activations (K, P, P, H)
    over the grid, summed over the H neurons: the squared coefficients on the 2-D basis
    functions of frequency pair (k, 0), (0, k) or (k, k)."""
    p = activations.shape[1]
    # in the activations' precision (float32: only which powers are largest matters here,
    # and float32 matmuls over the H neurons were 5x faster than float64 at P = 53)
    dtype = torch.promote_types(activations.dtype, torch.float32)
    basis, freq = fourier_basis(p, dtype, activations.device)
    squared = _coefficients(activations.to(dtype), basis).pow(2).sum(-1)  # (K, P, P)
    masks = _pair_masks(freq, p)[1:].to(squared.dtype)  # (⌊P/2⌋, P, P)
    return torch.einsum("kuv,fuv->kf", squared, masks)


def key_frequencies(power: torch.Tensor, n: int) -> torch.Tensor:
    """(K, n') int64: each member's n' = min(n, ⌊P/2⌋) frequencies of largest power, in
    increasing order (frequencies are 1-based: column j of ``power`` is k = j + 1)."""
    top = power.topk(min(n, power.shape[1]), dim=1).indices + 1
    return top.sort(dim=1).values


def component_mask(keys: torch.Tensor, p: int, constant: bool) -> torch.Tensor:
    """(K, P, P) bool: the 2-D basis functions of each member's key frequencies (their
    (k, 0), (0, k) and (k, k) pairs), and the constant when ``constant``."""
    _, freq = fourier_basis(p, device=keys.device)
    per_k = _pair_masks(freq, p)  # (⌊P/2⌋ + 1, P, P)
    mask = per_k[keys].any(dim=1)  # (K, P, P)
    if constant:
        mask = mask | per_k[0]
    return mask


def project_grid(grid: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The orthogonal projection of grid values (K, P, P, C) onto the 2-D basis functions
    ``mask`` (K, P, P) keeps, per member and per last-axis entry: (K, P, P, C), float64."""
    basis, _ = fourier_basis(grid.shape[1], torch.float64, grid.device)
    kept = _coefficients(grid.double(), basis) * mask[..., None]
    return _both_axes(basis.T.contiguous(), kept)


def split_grid(grid: torch.Tensor, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(restricted, excluded) of grid values (K, P, P, C), float64: the projection onto the
    constant and the components ``keys`` (K, P, P) marks, and onto everything else (the
    constant included); one forward transform shared by both."""
    basis, _ = fourier_basis(grid.shape[1], torch.float64, grid.device)
    coefficients = _coefficients(grid.double(), basis)
    constant = torch.zeros_like(keys)
    constant[:, 0, 0] = True  # the constant's row and column come first in the basis
    inverse = basis.T.contiguous()
    restricted = _both_axes(inverse, coefficients * (keys | constant)[..., None])
    return restricted, _both_axes(inverse, coefficients * (~keys)[..., None])


def grid_cross_entropy(logits: torch.Tensor, left: torch.Tensor, right: torch.Tensor,
                       labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per member, (K,), of grid logits (K, P, P, C) at each member's own
    pairs (``left``, ``right``, ``labels``: (K, N))."""
    k = logits.shape[0]
    rows = logits[torch.arange(k, device=logits.device)[:, None], left, right]  # (K, N, C)
    return F.cross_entropy(rows.flatten(0, 1), labels.flatten(),
                           reduction="none").view(k, -1).mean(1)


def gini(values: torch.Tensor) -> torch.Tensor:
    """Gini coefficient of each row of (K, n) non-negative values: Σ_i (2i − n − 1)·x_(i) /
    (n·Σ x), x sorted ascending (0: all equal; (n − 1)/n: one value holds everything); 0 for
    an all-zero row."""
    n = values.shape[1]
    x = values.sort(dim=1).values
    weights = 2.0 * torch.arange(1, n + 1, dtype=x.dtype, device=x.device) - n - 1
    total = x.sum(1)
    return torch.where(total > 0, (x * weights).sum(1) / (n * total.clamp_min(1e-300)),
                       torch.zeros_like(total))


def fourier_gini(embedding: torch.Tensor) -> torch.Tensor:
    """(K,): the Gini coefficient of the token embedding's (K, P, d) norm per frequency k = 1
    … ⌊P/2⌋ along the token axis (the root of its squared coefficients on the cos and sin
    functions of frequency k, summed over d). Rises as the embedding keeps few frequencies."""
    p = embedding.shape[1]
    basis, freq = fourier_basis(p, torch.float64, embedding.device)
    squared = torch.einsum("ux,kxd->kud", basis, embedding.double()).pow(2).sum(2)  # (K, P)
    folded = torch.zeros(squared.shape[0], p // 2 + 1, dtype=squared.dtype,
                         device=squared.device)
    folded.index_add_(1, freq, squared)
    return gini(folded[:, 1:].sqrt())


MEMBER_FLOATS = 1 << 24  # recorded activations over the grid per group of members (64 MB)


@torch.no_grad()
def fourier_measures(params: Mapping[str, torch.Tensor], arch: Architecture,
                     train: Pairs, test: Pairs, n: int,
                     max_floats: int = MEMBER_FLOATS) -> dict[str, torch.Tensor]:
    """Each member's Fourier progress measures, (K,) each: ``fourier_restricted_loss`` (the
    logits kept to the constant and the key frequencies, on its test pairs),
    ``fourier_excluded_loss`` (the logits without the key frequencies, on its training
    pairs), ``fourier_gini`` (of the token embedding; absent without one) and
    ``fourier_key_frequency_1`` … ``_n`` (its key frequencies, increasing).

    The key frequencies are those of largest power in the activations at the architecture's
    last ReLU site, last layer (the transformer's at the ``=`` position) over all P² pairs
    (a, b); ``train`` and ``test`` are each member's (left, right, labels), (K, N) each. The
    members are measured in groups, so the grid's activations stay within ``max_floats``
    (one member at least).
    """
    k, p = next(iter(params.values())).shape[0], arch.n_tokens
    site = arch.relu_sites[-1]
    per_pair = math.prod(next(s for name, s in reversed(arch.mask_shapes(1))
                              if name == site)[1:])
    group = max(1, max_floats // (p * p * per_pair))
    parts = [_measure_group({name: t[lo:lo + group] for name, t in params.items()}, arch,
                            site, tuple(x[lo:lo + group] for x in train),
                            tuple(x[lo:lo + group] for x in test), n)
             for lo in range(0, k, group)]
    return {name: torch.cat([part[name] for part in parts]) for name in parts[0]}


def _measure_group(params: Mapping[str, torch.Tensor], arch: Architecture, site: str,
                   train: tuple[torch.Tensor, ...], test: tuple[torch.Tensor, ...],
                   n: int) -> dict[str, torch.Tensor]:
    """One group of members: one batched forward over the grid, then each member's measures
    on its own rows alone, so that its values do not depend on who is measured beside it
    (a batched matmul rounds a member's block differently with K)."""
    k, p = next(iter(params.values())).shape[0], arch.n_tokens
    cells = torch.arange(p * p, device=train[0].device)
    grid = torch.stack([cells // p, cells % p], dim=1).expand(k, -1, -1)  # (K, P², 2): a, b
    out = arch.forward(params, grid, record=(site,))
    hidden = out.activations[site][-1]
    hidden = hidden[:, :, -1] if hidden.dim() == 4 else hidden  # the "=" position
    hidden = hidden.reshape(k, p, p, -1)
    logits = out.logits.reshape(k, p, p, -1)
    embedding = arch.token_embedding(params)
    rows = [_measure_one(hidden[m:m + 1], logits[m:m + 1],
                         None if embedding is None else embedding[m:m + 1],
                         [x[m:m + 1] for x in train], [x[m:m + 1] for x in test], n)
            for m in range(k)]
    return {name: torch.cat([row[name] for row in rows]) for name in rows[0]}


def _measure_one(hidden: torch.Tensor, logits: torch.Tensor, embedding: torch.Tensor | None,
                 train: list[torch.Tensor], test: list[torch.Tensor],
                 n: int) -> dict[str, torch.Tensor]:
    """One member's measures (K = 1 in every argument)."""
    p = hidden.shape[1]
    keys = key_frequencies(frequency_power(hidden), n)
    restricted, excluded = split_grid(logits, component_mask(keys, p, constant=False))
    values = {"fourier_restricted_loss": grid_cross_entropy(restricted, *test),
              "fourier_excluded_loss": grid_cross_entropy(excluded, *train)}
    if embedding is not None:
        values["fourier_gini"] = fourier_gini(embedding)
    values.update({f"{KEY_FREQUENCY}{i + 1}": keys[:, i] for i in range(keys.shape[1])})
    return values
