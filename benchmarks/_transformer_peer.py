"""The hand-written side of the transformer benchmark: Nanda et al.'s 1-layer transformer as
a plain ``nn.Module``, what a researcher writes today, and K of them trained in a loop or as
one ``torch.func`` vmap ensemble.

The module is written from the model's definition (``a b =`` in, learned positional
embedding, causal multi-head attention without biases, a ReLU MLP with biases, no LayerNorm,
logits at ``=``), not from grokexp's code.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, stack_module_state, vmap


class PlainTransformer(nn.Module):
    def __init__(self, p: int, d_model: int, n_heads: int, d_mlp: int):
        super().__init__()
        self.p, self.n_heads, self.d_head = p, n_heads, d_model // n_heads
        self.embed = nn.Embedding(p + 1, d_model)
        self.pos = nn.Parameter(torch.randn(3, d_model) / math.sqrt(d_model))
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)
        self.mlp_in = nn.Linear(d_model, d_mlp)
        self.mlp_out = nn.Linear(d_mlp, d_model)
        self.unembed = nn.Linear(d_model, p, bias=False)
        self.register_buffer("causal", torch.ones(3, 3).tril().bool(), persistent=False)

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        n = pairs.shape[0]
        equals = torch.full((n, 1), self.p, dtype=pairs.dtype, device=pairs.device)
        x = self.embed(torch.cat([pairs, equals], 1)) + self.pos  # (N, 3, d)
        q, k, v = self.qkv(x).view(n, 3, 3, self.n_heads, self.d_head).unbind(2)
        scores = torch.einsum("nqhe,nkhe->nhqk", q, k) / math.sqrt(self.d_head)
        scores = scores.masked_fill(~self.causal, float("-inf"))
        mixed = torch.einsum("nhqk,nkhe->nqhe", scores.softmax(-1), v).reshape(n, 3, -1)
        x = x + self.out(mixed)
        x = x + self.mlp_out(F.relu(self.mlp_in(x)))
        return self.unembed(x[:, -1])


def loop_epoch(models: list[nn.Module], optimizers: list[torch.optim.Optimizer],
               pairs: torch.Tensor, labels: torch.Tensor) -> None:
    """One full-batch step of each model, one after another."""
    for model, optimizer in zip(models, optimizers, strict=True):
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(pairs), labels).backward()
        optimizer.step()


class VmapEnsemble:
    """K models' parameters stacked (``torch.func.stack_module_state``); one vmapped gradient
    per step, AdamW over the stacked tensors (elementwise, so each member's update is its own)."""

    def __init__(self, models: list[nn.Module], lr: float, weight_decay: float,
                 betas: tuple[float, float]):
        params, buffers = stack_module_state(models)
        self.params = {n: p.detach().requires_grad_(True) for n, p in params.items()}
        self.buffers = buffers
        base = copy.deepcopy(models[0]).to("meta")

        def loss(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor,
                 y: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(functional_call(base, (p, b), (x,)), y)

        self.grads = vmap(grad(loss), in_dims=(0, 0, None, None))
        self.optimizer = torch.optim.AdamW(list(self.params.values()), lr=lr,
                                           weight_decay=weight_decay, betas=betas)

    def epoch(self, pairs: torch.Tensor, labels: torch.Tensor) -> None:
        grads = self.grads(self.params, self.buffers, pairs, labels)
        for name, p in self.params.items():
            p.grad = grads[name]
        self.optimizer.step()
