"""Inactive-neuron share on hand-built weights where every unit's fate is known."""

from __future__ import annotations

import torch

from grokexp.diagnostics.metrics.activity import activation_sparsity
from grokexp.diagnostics.metrics.distribution import embedding_shape, histograms, parameter_stats
from grokexp.engine.arch.mlp import MlpArch as Architecture


def _hand_built() -> tuple[dict[str, torch.Tensor], Architecture]:
    # P = 3 tokens with scalar embeddings 0, 1, 2; four hidden units reading the left token.
    arch = Architecture(modulus=3, embedding_dim=1, hidden=(4,), activation="relu",
                        embedding_activation="none")
    w = torch.zeros(2, 4)
    w[0] = torch.tensor([0.0, 1.0, 1.0, -1.0])  # left operand's weight per unit
    b = torch.tensor([-1.0, 0.5, -1.5, -3.0])
    # unit 0: -1 always → dead; unit 1: x + 0.5 > 0 always; unit 2: x - 1.5 > 0 only for x=2;
    # unit 3: -x - 3 < 0 always → dead
    params = {"embedding": torch.tensor([[0.0], [1.0], [2.0]])[None],
              "hidden.0.weight": w[None], "hidden.0.bias": b[None],
              "output.weight": torch.ones(1, 4, 3), "output.bias": torch.zeros(1, 3)}
    return params, arch


def test_inactive_neurons_on_hand_built_weights() -> None:
    params, arch = _hand_built()
    left = torch.tensor([[0, 1, 2, 0]])  # (K=1, N=4)
    right = torch.tensor([[1, 2, 0, 0]])
    out = activation_sparsity(params, arch, left, right)
    assert float(out["inactive_neurons_pct"][0]) == 50.0
    # zeros: units 0 and 3 on all 4 inputs, unit 2 on 3 of them (left = 0, 1, 0) → 11 of 16
    assert abs(float(out["zero_activation_frac"][0]) - 11 / 16) < 1e-7
    only_two = activation_sparsity(params, arch, left[:, 2:3], right[:, 2:3])
    assert float(only_two["inactive_neurons_pct"][0]) == 50.0  # unit 2 fires on left = 2


def test_parameter_stats_and_histograms() -> None:
    params, _ = _hand_built()
    stats = parameter_stats(params, hidden_layers=1)
    assert abs(float(stats["hidden_bias_mean"][0]) - (-5.0 / 4)) < 1e-7
    values = torch.tensor([-1.0, 0.5, -1.5, -3.0])
    expected_std = float(((values - values.mean()) ** 2).mean().sqrt())
    assert abs(float(stats["hidden_bias_std"][0]) - expected_std) < 1e-6
    assert set(stats) >= {"embedding_mean", "output_weight_std", "hidden_weight_mean"}
    assert "hidden_0_weight_mean" in parameter_stats(params, hidden_layers=2)
    density, edges = histograms(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), bins=2)
    width = float(edges[1] - edges[0])
    assert abs(float((density * width).sum()) - 1.0) < 1e-6
    shape = embedding_shape(torch.tensor([[[-0.4], [0.4], [-0.4], [0.4]]]))
    assert float(shape["embedding_peak_low"][0]) < 0 < float(shape["embedding_peak_high"][0])
