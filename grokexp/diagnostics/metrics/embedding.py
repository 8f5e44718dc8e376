"""The embedding table's geometry: cosine similarities and the shape of its value distribution.

Paper Section 3.2: as a network groks modular addition, the P×P cosine-similarity matrix of
its token embeddings develops bands along the codiagonals (i − j fixed mod P), and the
embedding values move from a Gaussian to two symmetric peaks near ±0.4.
"""

from __future__ import annotations

import torch

__all__ = ["cosine_matrix", "codiagonal_structure", "bimodality_coefficient", "two_peaks"]


def cosine_matrix(embedding: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Cosine similarity of every pair of token embeddings: (K, P, d) → (K, P, P).

    C[k, i, j] = E_i · E_j / (‖E_i‖ ‖E_j‖) for member k (paper Eq. 2); a zero row gives 0.
    """
    unit = embedding / embedding.norm(dim=-1, keepdim=True).clamp_min(eps)  # (K, P, d)
    return unit @ unit.transpose(1, 2)


def codiagonal_structure(cos: torch.Tensor) -> torch.Tensor:
    """Share of the off-diagonal variance of C explained by its codiagonal means: (K,).

    Group the off-diagonal cells by k = (i − j) mod P (k = 1 … P−1, P cells each) and let m_k
    be each group's mean. The score is the between-group share of variance (η²):

        1 − Σ_{i≠j} (C_ij − m_k(i,j))² / Σ_{i≠j} (C_ij − mean_{i≠j} C)²

    It is 1 when C depends on i − j alone (the banded heatmap of a grokked network) and about
    1/P for unstructured random embeddings; 0 when the off-diagonal is constant (0/0 → 0).
    """
    k, p, _ = cos.shape
    i = torch.arange(p, device=cos.device)
    group = (i[:, None] - i[None, :]) % p  # (P, P), 0 on the diagonal
    off = group != 0
    flat = cos.reshape(k, p * p)  # (K, P²)
    idx = group.reshape(1, p * p).expand(k, -1)
    means = torch.zeros(k, p, dtype=cos.dtype, device=cos.device).scatter_add_(1, idx, flat) / p
    fitted = torch.gather(means, 1, idx)  # (K, P²): each cell's codiagonal mean
    mask = off.reshape(1, p * p).to(cos.dtype)
    overall = (flat * mask).sum(1, keepdim=True) / mask.sum()
    total = (((flat - overall) ** 2) * mask).sum(1)  # (K,)
    residual = (((flat - fitted) ** 2) * mask).sum(1)  # (K,)
    safe = total.clamp_min(torch.finfo(cos.dtype).tiny)
    return torch.where(total > 0, 1.0 - residual / safe, torch.zeros_like(total))


def bimodality_coefficient(values: torch.Tensor) -> torch.Tensor:
    """Sarle's bimodality coefficient of each row of (K, n) values: (K,).

    BC = (g² + 1) / (κ + 3(n−1)² / ((n−2)(n−3))), g the skewness and κ the excess kurtosis
    (moment estimates); NaN for a constant row. A normal sample gives ≈ 1/3, a uniform one
    ≈ 5/9, and two well separated peaks approach 1; BC > 5/9 is the usual sign of bimodality.
    """
    n = values.shape[1]
    centred = values - values.mean(1, keepdim=True)
    raw_m2 = (centred**2).mean(1)
    m2 = raw_m2.clamp_min(torch.finfo(values.dtype).tiny)
    skew = (centred**3).mean(1) / m2**1.5
    kurt = (centred**4).mean(1) / m2**2 - 3.0
    correction = 3.0 * (n - 1) ** 2 / ((n - 2) * (n - 3))
    bc = (skew**2 + 1.0) / (kurt + correction)
    return torch.where(raw_m2 > 0, bc, torch.full_like(bc, float("nan")))  # constant: undefined


def two_peaks(values: torch.Tensor, bins: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Locations of the highest density below and above the median, per row: (K,), (K,).

    A histogram of each member's values (``bins`` bins over its own range, smoothed by a
    [1, 2, 3, 2, 1] kernel) is split at the median (the lowest bin always below, the highest
    always above: after a ReLU the median may be 0, the lowest value); each side's tallest bin
    centre is a peak.
    Two separated modes give their locations (the paper's ±0.4); one mode gives two
    locations next to each other, so ``high − low`` also measures the split.
    """
    k = values.shape[0]
    low, high = values.min(1).values, values.max(1).values  # (K,)
    width = (high - low).clamp_min(torch.finfo(values.dtype).eps) / bins
    idx = ((values - low[:, None]) / width[:, None]).long().clamp(0, bins - 1)  # (K, n)
    counts = torch.zeros(k, bins, dtype=values.dtype, device=values.device)
    counts.scatter_add_(1, idx, torch.ones_like(values))
    kernel = torch.tensor([1.0, 2.0, 3.0, 2.0, 1.0], dtype=values.dtype, device=values.device)
    smooth = torch.nn.functional.conv1d(counts[:, None], kernel.view(1, 1, -1), padding=2)[:, 0]
    centres = low[:, None] + (torch.arange(bins, device=values.device) + 0.5) * width[:, None]
    below = centres <= values.quantile(0.5, dim=1)[:, None]  # (K, bins)
    below[:, 0], below[:, -1] = True, False  # each side has a bin when the median sits in one
    neg = torch.full_like(smooth, -1.0)
    peak_low = torch.gather(centres, 1, torch.where(below, smooth, neg).argmax(1, keepdim=True))
    peak_high = torch.gather(centres, 1, torch.where(~below, smooth, neg).argmax(1, keepdim=True))
    return peak_low[:, 0], peak_high[:, 0]
