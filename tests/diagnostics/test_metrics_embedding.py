"""Embedding geometry metrics against independent computations on small known cases."""

from __future__ import annotations

import math

import numpy as np
import torch

from grokexp.diagnostics.metrics.embedding import (
    bimodality_coefficient,
    codiagonal_structure,
    cosine_matrix,
    two_peaks,
)


def test_cosine_matrix_matches_the_formula() -> None:
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
    cos = cosine_matrix(emb)
    assert cos.shape == (2, 5, 5)
    for k in range(2):
        for i in range(5):
            for j in range(5):
                a, b = emb[k, i].tolist(), emb[k, j].tolist()
                dot = sum(x * y for x, y in zip(a, b, strict=True))
                norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
                assert abs(float(cos[k, i, j]) - dot / norm) < 1e-12


def _structure_by_loops(c: np.ndarray) -> float:
    p = c.shape[0]
    groups: dict[int, list[float]] = {}
    for i in range(p):
        for j in range(p):
            if i != j:
                groups.setdefault((i - j) % p, []).append(c[i, j])
    cells = [v for vs in groups.values() for v in vs]
    overall = sum(cells) / len(cells)
    total = sum((v - overall) ** 2 for v in cells)
    within = sum((v - sum(vs) / len(vs)) ** 2 for vs in groups.values() for v in vs)
    return 1.0 - within / total


def test_codiagonal_structure_matches_loops_and_extremes() -> None:
    p = 11
    angles = 2 * math.pi * 3 * torch.arange(p, dtype=torch.float64) / p
    circle = torch.stack([angles.cos(), angles.sin()], dim=1)  # cos sim depends on i - j only
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(p, 16, generator=g, dtype=torch.float64)
    mixed = torch.cat([circle, 0.3 * noise[:, :14]], dim=1)  # partly banded
    cos = cosine_matrix(torch.stack([mixed, noise]))
    banded = cosine_matrix(circle[None])
    assert abs(float(codiagonal_structure(banded)[0]) - 1.0) < 1e-9
    score = codiagonal_structure(cos)
    for k in range(2):
        assert abs(float(score[k]) - _structure_by_loops(cos[k].numpy())) < 1e-9
    assert float(score[1]) < 0.4 < float(score[0])  # random: roughly 2/P


def test_bimodality_coefficient_matches_numpy_and_separates_shapes() -> None:
    g = torch.Generator().manual_seed(2)
    n = 20000
    normal = torch.randn(n, generator=g, dtype=torch.float64) * 0.1
    sign = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0).double()
    bimodal = sign * 0.4 + torch.randn(n, generator=g, dtype=torch.float64) * 0.05
    uniform = torch.rand(n, generator=g, dtype=torch.float64)
    bc = bimodality_coefficient(torch.stack([normal, bimodal, uniform]))
    for row, value in zip((normal, bimodal, uniform), bc.tolist(), strict=True):
        x = row.numpy()
        d = x - x.mean()
        m2 = (d**2).mean()
        skew, kurt = (d**3).mean() / m2**1.5, (d**4).mean() / m2**2 - 3
        expected = (skew**2 + 1) / (kurt + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))
        assert abs(value - expected) < 1e-9
    assert abs(bc[0] - 1 / 3) < 0.03
    assert bc[1] > 0.8
    assert abs(bc[2] - 5 / 9) < 0.03
    assert math.isnan(float(bimodality_coefficient(torch.ones(1, 10))[0]))


def test_two_peaks_find_the_modes() -> None:
    g = torch.Generator().manual_seed(3)
    n = 20000
    sign = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    bimodal = sign * 0.4 + torch.randn(n, generator=g) * 0.05
    normal = torch.randn(n, generator=g) * 0.2
    low, high = two_peaks(torch.stack([bimodal, normal]))
    assert abs(float(low[0]) + 0.4) < 0.04 and abs(float(high[0]) - 0.4) < 0.04
    assert float(high[1] - low[1]) < 0.15  # one mode: the two sides meet near 0
