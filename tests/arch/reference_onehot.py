"""An independent one-hot MLP, written from the definition (Gromov; Doshi et al.; Prieto et
al.): no grokexp code is imported (tests/reference.py loads the weights, as for the paper's
MLP).

The input is ``concat(onehot(a), onehot(b))``, 2P wide, built outright with ``F.one_hot``;
then ``nn.Linear`` and the activation per hidden layer, and an ``nn.Linear`` to P logits.
Dropout is the product with given keep-masks (already scaled by 1/(1-p)) after each hidden
layer's activation (the site ``hidden``); the recorded activations are taken before it.

Only the weights come from grokexp: one member's state dict, whose linear weights are stored
(in, out) where ``nn.Linear`` keeps (out, in).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from reference import hidden_widths, load_linears
from torch import nn

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "tanh": torch.tanh}


class ReferenceOneHotMlp(nn.Module):
    """onehot(a) ‖ onehot(b) → [Linear → activation]* → Linear."""

    def __init__(self, modulus: int, hidden: Sequence[int], activation: str = "relu"):
        super().__init__()
        self.modulus, self.activation = modulus, activation
        widths = [2 * modulus, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(widths[i], widths[i + 1])
                                    for i in range(len(hidden)))
        self.output = nn.Linear(widths[-1], modulus)

    @classmethod
    def from_member(cls, state: Mapping[str, torch.Tensor],
                    activation: str = "relu") -> ReferenceOneHotMlp:
        model = cls(int(state["output.bias"].shape[0]), hidden_widths(state), activation)
        load_linears(model, state)
        return model

    def inputs(self, pairs: torch.Tensor) -> torch.Tensor:
        """(N, 2P): the one-hot of the left operand, then the one-hot of the right."""
        p = self.modulus
        return torch.cat([F.one_hot(pairs[:, 0], p), F.one_hot(pairs[:, 1], p)], 1).float()

    def run(self, pairs: torch.Tensor, masks: Sequence[torch.Tensor] | None = None
            ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits (N, P) and each hidden layer's activations (N, H) before dropout;
        ``masks[l]`` multiplies layer l's activations."""
        x = self.inputs(pairs)
        recorded = []
        for index, layer in enumerate(self.hidden):
            x = ACTIVATIONS[self.activation](layer(x))
            recorded.append(x)
            if masks is not None:
                x = x * masks[index]
        return self.output(x), recorded

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        return self.run(pairs)[0]
