"""Sparsity of the ReLU layers: units that never fire on the training inputs (Fig. 11).

Paper Section 3.4: the share of inactive ReLU units falls fast while the network memorises,
then rises again as weight decay and the symmetries of the task prune the network. Measured
at the architecture's ReLU sites (``Architecture.relu_sites``: the paper MLP's and the one-hot
MLP's hidden layers, the transformer's MLP), from the activations its own forward records.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ...engine.arch.base import Architecture

__all__ = ["activation_sparsity"]


@torch.no_grad()
def activation_sparsity(params: Mapping[str, torch.Tensor], arch: Architecture,
                        left: torch.Tensor, right: torch.Tensor) -> dict[str, torch.Tensor]:
    """``inactive_neurons_pct`` and ``zero_activation_frac`` of each member, (K,) each; empty
    when the architecture has no ReLU site (the share would mean nothing there).

    ``left``/``right`` are (K, N) per-member inputs (the training pairs). A unit (one feature
    of one layer at a ReLU site) is inactive when its output is exactly zero on every one of
    those inputs at every position it occurs (a transformer's MLP runs at each of the
    sequence's positions); the percentage counts such units over all layers of all ReLU
    sites. ``zero_activation_frac`` is the share of exact zeros over all units, inputs and
    positions.
    """
    if not arch.relu_sites:
        return {}
    pairs = torch.stack([left, right], dim=2)  # (K, N, 2)
    recorded = arch.forward(params, pairs, record=arch.relu_sites).activations
    layers = [h.flatten(1, -2) for site in arch.relu_sites for h in recorded[site]]
    zero = [h == 0 for h in layers]  # each (K, N·positions, F)
    dead = sum(z.all(dim=1).float().sum(1) for z in zero)  # (K,)
    zeros = sum(z.float().sum((1, 2)) for z in zero)  # (K,)
    units = sum(z.shape[2] for z in zero)
    cells = sum(z.shape[1] * z.shape[2] for z in zero)  # units × inputs × positions
    return {"inactive_neurons_pct": 100.0 * torch.as_tensor(dead) / units,
            "zero_activation_frac": torch.as_tensor(zeros) / cells}
