"""The Fourier progress measures (Nanda et al. 2023) against a numpy reference written here
from their definitions, with the DFT (np.fft) rather than grokexp's real cos/sin basis.

The reference uses that the real basis functions of frequency pairs (k, 0), (0, k), (k, k)
span the same space as the complex exponentials of the DFT bins (±k, 0), (0, ±k), (±k, ±k)
(each bin's exponential has squared norm P² over the grid, P along one axis), so a power is
Σ |DFT|² / P² over those bins and a projection is an inverse DFT of the kept bins. Checked on
tables built from known frequencies, and on populations of each architecture with random
weights, against the plain references of tests/ (their forward over all P² pairs).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
import torch
from arch.reference_onehot import ReferenceOneHotMlp
from arch.reference_transformer import ReferenceTransformer
from arch_cases import random_params
from reference import PaperMLP, member

from grokexp.diagnostics.metrics.fourier import (
    component_mask,
    fourier_basis,
    fourier_measures,
    frequency_power,
    grid_cross_entropy,
    key_frequencies,
    project_grid,
    split_grid,
)
from grokexp.diagnostics.probes import fourier_cannot
from grokexp.engine.arch.base import Architecture
from grokexp.engine.arch.mlp import MlpArch
from grokexp.engine.arch.onehot_mlp import OneHotMlpArch
from grokexp.engine.arch.transformer import TransformerArch
from grokexp.spec.schema import TaskSpec


def bins(p: int, keys) -> set[tuple[int, int]]:
    """The DFT bins of the (k, 0), (0, k) and (k, k) components of the frequencies ``keys``."""
    out = set()
    for k in keys:
        signed = {k % p, -k % p}
        out |= {(s, 0) for s in signed} | {(0, s) for s in signed}
        out |= {(s, t) for s in signed for t in signed}
    return out


def ref_power(acts: np.ndarray) -> np.ndarray:
    """(⌊P/2⌋,): power of k = 1 … ⌊P/2⌋ in (P, P, H) activations, summed over neurons."""
    p = acts.shape[0]
    energy = (np.abs(np.fft.fft2(acts, axes=(0, 1))) ** 2).sum(2) / p**2
    return np.array([sum(energy[b] for b in bins(p, [k])) for k in range(1, p // 2 + 1)])


def ref_keys(acts: np.ndarray, n: int) -> list[int]:
    power = ref_power(acts)
    return sorted(int(k) + 1 for k in np.argsort(power)[::-1][:n])


def ref_project(logits: np.ndarray, keep: set[tuple[int, int]]) -> np.ndarray:
    """(P, P, C) logits projected on the DFT bins ``keep`` (per class)."""
    p = logits.shape[0]
    mask = np.zeros((p, p, 1))
    for b in keep:
        mask[b] = 1.0
    return np.fft.ifft2(np.fft.fft2(logits, axes=(0, 1)) * mask, axes=(0, 1)).real


def ref_cross_entropy(logits: np.ndarray, left, right, labels) -> float:
    rows = logits[left, right]  # (N, C)
    top = rows.max(1, keepdims=True)
    lse = np.log(np.exp(rows - top).sum(1)) + top[:, 0]
    return float(np.mean(lse - rows[np.arange(len(labels)), labels]))


def ref_gini(embedding: np.ndarray) -> float:
    """Gini of the (P, d) embedding's norm per frequency k = 1 … ⌊P/2⌋ along the tokens."""
    p = embedding.shape[0]
    energy = (np.abs(np.fft.fft(embedding, axis=0)) ** 2).sum(1) / p
    x = np.sort([np.sqrt(sum(energy[f] for f in {k, p - k})) for k in range(1, p // 2 + 1)])
    n = len(x)
    return float(np.sum((2 * np.arange(1, n + 1) - n - 1) * x) / (n * x.sum()))


def ref_measures(acts, logits, embedding, train, test, n) -> dict[str, float | list[int]]:
    p = acts.shape[0]
    keys = ref_keys(acts, n)
    restricted = ref_project(logits, bins(p, keys) | {(0, 0)})
    excluded = logits - ref_project(logits, bins(p, keys))
    return {"keys": keys, "fourier_restricted_loss": ref_cross_entropy(restricted, *test),
            "fourier_excluded_loss": ref_cross_entropy(excluded, *train),
            "fourier_gini": ref_gini(embedding)}


@pytest.mark.parametrize("p", [10, 11])
def test_the_basis_is_the_real_orthonormal_fourier_basis(p) -> None:
    basis, freq = fourier_basis(p)
    x = np.arange(p)
    expected = [np.full(p, p**-0.5)]
    for k in range(1, (p - 1) // 2 + 1):
        expected += [np.sqrt(2 / p) * np.cos(2 * np.pi * k * x / p),
                     np.sqrt(2 / p) * np.sin(2 * np.pi * k * x / p)]
    if p % 2 == 0:
        expected.append(np.cos(np.pi * x) / np.sqrt(p))
    np.testing.assert_allclose(basis.numpy(), np.array(expected), atol=1e-12)
    np.testing.assert_allclose(basis.numpy() @ basis.numpy().T, np.eye(p), atol=1e-12)
    assert freq.tolist() == [0] + [k for k in range(1, (p - 1) // 2 + 1) for _ in (0, 1)] \
        + ([p // 2] if p % 2 == 0 else [])


@pytest.mark.parametrize(("p", "keys"), [(11, [2, 5]), (10, [3, 5]), (13, [1, 4, 6])])
def test_key_frequencies_of_a_table_built_from_them(p, keys) -> None:
    """Neurons cos(2πk(a+b)/P + φ), cos(2πka/P), sin(2πkb/P) for k in ``keys``, plus a
    weak other frequency and a constant: the keys come back exactly, and the power matches
    the reference."""
    gen = np.random.default_rng(0)
    a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    neurons = []
    for k in keys:
        w = 2 * np.pi * k / p
        neurons += [np.cos(w * (a + b) + gen.uniform(0, 6)), np.cos(w * a), np.sin(w * b) + 1]
    other = next(f for f in range(1, p // 2 + 1) if f not in keys)
    neurons.append(0.1 * np.cos(2 * np.pi * other * a / p) + 0.5)
    acts = np.stack(neurons, axis=2)  # (P, P, H)
    power = frequency_power(torch.from_numpy(acts)[None])
    np.testing.assert_allclose(power[0].numpy(), ref_power(acts), rtol=1e-10, atol=1e-10)
    assert key_frequencies(power, len(keys))[0].tolist() == sorted(keys)


@pytest.mark.parametrize("p", [10, 11])
def test_restricted_and_excluded_loss_of_a_pure_key_frequency_logit_table(p) -> None:
    """L[a, b, c] = 3·cos(2πk(a + b − c)/P) summed over the keys, plus a constant per class:
    only (k, k) components and the constant. Restricted to the keys it is L itself (its
    loss is the full loss); without them only the per-class constant is left, whose loss is
    logsumexp(const) − const[label] on every pair."""
    keys, n_pairs = [2, 5], p * p // 2
    a, b, c = np.meshgrid(np.arange(p), np.arange(p), np.arange(p), indexing="ij")
    const = np.random.default_rng(1).normal(size=p)
    logits = sum(3 * np.cos(2 * np.pi * k * (a + b - c) / p) for k in keys) + const
    order = np.random.default_rng(2).permutation(p * p)
    left, right = order // p, order % p
    labels = (left + right) % p
    tr = [torch.from_numpy(x[:n_pairs])[None] for x in (left, right, labels)]
    te = [torch.from_numpy(x[n_pairs:])[None] for x in (left, right, labels)]
    grid = torch.from_numpy(logits)[None]
    key_t = torch.tensor([keys])
    restricted = project_grid(grid, component_mask(key_t, p, constant=True))
    excluded = grid - project_grid(grid, component_mask(key_t, p, constant=False))
    np.testing.assert_allclose(restricted[0].numpy(), logits, atol=1e-10)
    np.testing.assert_allclose(excluded[0].numpy(), np.broadcast_to(const, logits.shape),
                               atol=1e-10)
    both = split_grid(grid, component_mask(key_t, p, constant=False))  # what a run uses
    np.testing.assert_allclose(both[0].numpy(), restricted.numpy(), atol=1e-10)
    np.testing.assert_allclose(both[1].numpy(), excluded.numpy(), atol=1e-10)
    full = ref_cross_entropy(logits, left[n_pairs:], right[n_pairs:], labels[n_pairs:])
    assert grid_cross_entropy(restricted, *te).item() == pytest.approx(full, rel=1e-10)
    lse = np.log(np.exp(const).sum())
    known = float(np.mean(lse - const[labels[:n_pairs]]))
    assert grid_cross_entropy(excluded, *tr).item() == pytest.approx(known, rel=1e-10)


def _architectures(p: int) -> dict[str, Architecture]:
    return {"mlp": MlpArch(p, 6, (12, 10)),
            "transformer": TransformerArch(p, 16, 2, 24),
            "transformer_2_layers_ln": TransformerArch(p, 16, 2, 24, 2, True),
            "onehot_mlp": OneHotMlpArch(p, (16, 12))}


@torch.no_grad()
def _reference_grid(name: str, state: Mapping[str, torch.Tensor], p: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One member's last-ReLU activations (P, P, H), logits (P, P, P) over the grid and its
    token embedding, from the plain reference networks of tests/."""
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    pairs = torch.stack([a.flatten(), b.flatten()], 1)
    if name == "mlp":
        *hidden, logits = PaperMLP.from_state(state).activations(pairs[:, 0], pairs[:, 1])
        acts, embedding = hidden[-1], state["embedding"]
    elif name.startswith("transformer"):
        net = ReferenceTransformer.from_member(state, 2, name.endswith("_ln"))
        logits, hooks = net.run(pairs)
        acts, embedding = hooks["mlp"][-1][:, 2], state["embedding"][:p]  # at "="
    else:
        logits, recorded = ReferenceOneHotMlp.from_member(state).run(pairs)
        w = state["hidden.0.weight"]  # (2P, H): rows P.. read the right operand
        acts, embedding = recorded[-1], torch.cat([w[:p], w[p:]], dim=1)
    return (acts.double().numpy().reshape(p, p, -1), logits.double().numpy().reshape(p, p, -1),
            embedding.double().numpy())


def _splits(k: int, p: int, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Each member's own random half of the grid to train on, the rest to test, (K, N)."""
    orders = torch.stack([torch.randperm(p * p, generator=torch.Generator().manual_seed(seed + m))
                          for m in range(k)])
    left, right = orders // p, orders % p
    labels = (left + right) % p
    half = p * p // 2
    return ([x[:, :half] for x in (left, right, labels)],
            [x[:, half:] for x in (left, right, labels)])


def _same(name: str):
    """Bitwise where the architecture's batched forward is (the transformer and the one-hot
    MLP pad narrow matmuls); the paper MLP's batched forward rounds outputs narrower than 12
    columns (P = 10, 11 here) differently with K (docs/architectures.md), a float32 rounding
    that the float64 measures then carry: 1e-7 relative."""
    if name == "mlp":
        return lambda a, b, key: np.testing.assert_allclose(a, b, rtol=1e-7, err_msg=key)
    return lambda a, b, key: np.testing.assert_array_equal(a, b, err_msg=key)


@pytest.mark.parametrize("p", [10, 11])
@pytest.mark.parametrize("name", ["mlp", "transformer", "transformer_2_layers_ln", "onehot_mlp"])
def test_every_architecture_in_populations_of_1_2_and_5(name, p) -> None:
    arch, n = _architectures(p)[name], 2
    for k in (1, 2, 5):
        params = random_params(arch, k, seed=10 * k + p)
        train, test = _splits(k, p, seed=k)
        got = {key: v.numpy() for key, v in fourier_measures(params, arch, tuple(train),
                                                             tuple(test), n).items()}
        assert len(got["fourier_restricted_loss"]) == k
        for m in range(k):
            acts, logits, embedding = _reference_grid(name, member(params, m), p)
            want = ref_measures(acts, logits, embedding, [x[m].numpy() for x in train],
                                [x[m].numpy() for x in test], n)
            assert [int(got[f"fourier_key_frequency_{i}"][m]) for i in (1, 2)] == want["keys"]
            for key in ("fourier_restricted_loss", "fourier_excluded_loss", "fourier_gini"):
                # float32 forwards (batched here, nn.Module there) agree to ~1e-6 relative
                assert got[key][m] == pytest.approx(want[key], rel=2e-5), (key, m)
        if k == 5:  # each member's values are its own, whoever is measured beside it
            same = _same(name)
            for keep in ([3], [4, 1]):
                part = fourier_measures({key: t[keep] for key, t in params.items()}, arch,
                                        tuple(x[keep] for x in train),
                                        tuple(x[keep] for x in test), n)
                for key, value in part.items():
                    same(value.numpy(), got[key][keep], key)
            grouped = fourier_measures(params, arch, tuple(train), tuple(test), n,
                                       max_floats=1)  # one member at a time
            for key, value in grouped.items():
                same(value.numpy(), got[key], key)


def test_the_measures_say_why_they_cannot_apply() -> None:
    relu = OneHotMlpArch(7, 8)
    assert fourier_cannot(TaskSpec(modulus=7, operation="add"), relu) is None
    assert fourier_cannot(TaskSpec(modulus=7, operation="mul"), relu) is None
    said = fourier_cannot(TaskSpec(modulus=7, operation="div"), relu)
    assert said is not None and "'div'" in said and "b = 0" in said
    said = fourier_cannot(TaskSpec(modulus=7), OneHotMlpArch(7, 8, "tanh"))
    assert said is not None and "no ReLU" in said


def test_the_spec_keys_are_dumped_only_when_changed() -> None:
    """Specs written before the keys existed dump (and hash) as they did."""
    from grokexp.spec.io import spec_to_dict, validate_spec

    plain = validate_spec({"name": "a"}, "a")
    assert plain.metrics.fourier and plain.metrics.fourier_frequencies == 5
    assert not {"fourier", "fourier_frequencies"} & set(spec_to_dict(plain)["metrics"])
    changed = validate_spec({"name": "a", "metrics": {"fourier": False,
                                                      "fourier_frequencies": 3}}, "a")
    dumped = spec_to_dict(changed)["metrics"]
    assert dumped["fourier"] is False and dumped["fourier_frequencies"] == 3
    assert validate_spec({"name": "a", "metrics": dumped}, "a") == changed
