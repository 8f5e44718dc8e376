"""Sparsity of the hidden layers: units that never fire on the training inputs (Fig. 11).

Paper Section 3.4: the share of inactive ReLU units falls fast while the network memorises,
then rises again as weight decay and the symmetries of the task prune the network.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ...engine.model import Architecture, hidden_activations

__all__ = ["activation_sparsity"]


@torch.no_grad()
def activation_sparsity(params: Mapping[str, torch.Tensor], arch: Architecture,
                        left: torch.Tensor, right: torch.Tensor) -> dict[str, torch.Tensor]:
    """``inactive_neurons_pct`` and ``zero_activation_frac`` of each member, (K,) each.

    ``left``/``right`` are (K, N) per-member inputs (the training pairs). A unit is inactive
    when its output is exactly zero on every one of those inputs; the percentage counts such
    units over all hidden layers. ``zero_activation_frac`` is the mean share of exact zeros
    over all units and inputs.
    """
    layers = hidden_activations(params, arch, left, right)  # [(K, N, H_l)]
    zero = [(h == 0) for h in layers]
    dead = sum(z.all(dim=1).float().sum(1) for z in zero)  # (K,)
    zeros = sum(z.float().sum((1, 2)) for z in zero)  # (K,)
    units = sum(h.shape[2] for h in layers)
    inputs = left.shape[1]
    return {"inactive_neurons_pct": 100.0 * torch.as_tensor(dead) / units,
            "zero_activation_frac": torch.as_tensor(zeros) / (units * inputs)}
