"""The weight norm and the Fourier share against numpy references written from definitions."""

from __future__ import annotations

import numpy as np
import torch

from grokexp.diagnostics.metrics.progress import fourier_power_share, weight_norm


def numpy_share(table: np.ndarray, top: int) -> float:
    """One member (P, d): rfft along tokens; each 0 < f < P/2 stands for f and P − f (×2)."""
    p = table.shape[0]
    power = (np.abs(np.fft.rfft(table, axis=0)) ** 2).sum(1)  # (⌊P/2⌋ + 1,)
    weights = np.full(power.shape, 2.0)
    if p % 2 == 0:
        weights[-1] = 1.0  # the Nyquist bin has no twin
    power = (power * weights)[1:]
    return float(np.sort(power)[::-1][:top].sum() / power.sum())


def test_an_embedding_of_two_frequencies_has_all_its_power_in_them():
    p, d = 13, 8
    rng = np.random.default_rng(0)
    i = np.arange(p)[:, None]
    table = (np.cos(2 * np.pi * 3 * i / p) * rng.normal(size=(1, d))
             + np.sin(2 * np.pi * 5 * i / p) * rng.normal(size=(1, d)) + 0.7)  # + a constant
    emb = torch.tensor(np.stack([table, rng.normal(size=(p, d))]))  # (2, P, d)
    share = fourier_power_share(emb, top=2)
    assert abs(share[0].item() - 1.0) < 1e-6  # float32 result
    assert share[1].item() < 0.6  # noise: 2 of 6 frequencies hold about a third
    assert fourier_power_share(emb, top=1)[0].item() < 0.99
    assert fourier_power_share(torch.ones(1, p, d)).item() == 0.0  # constant: no power


def test_the_share_agrees_with_numpy_for_odd_and_even_p():
    rng = np.random.default_rng(1)
    for p in (11, 12, 53):
        emb = rng.normal(size=(3, p, 16))
        ours = fourier_power_share(torch.tensor(emb), top=5).numpy()
        ref = [numpy_share(emb[k], 5) for k in range(3)]
        np.testing.assert_allclose(ours, ref, rtol=1e-6)  # float32 output


def test_weight_norm_is_the_norm_of_every_parameter_of_one_member():
    rng = np.random.default_rng(2)
    params = {"embedding": rng.normal(size=(3, 5, 4)), "hidden.0.weight": rng.normal(size=(3, 8)),
              "output.bias": rng.normal(size=(3, 2))}
    ours = weight_norm({k: torch.tensor(v, dtype=torch.float32) for k, v in params.items()})
    for k in range(3):
        ref = np.sqrt(sum((v[k].astype(np.float32).astype(np.float64) ** 2).sum()
                          for v in params.values()))
        assert abs(ours[k].item() - ref) <= 1e-6 * ref
