"""The published reducers' own code, as their authors apply it to ``p.grad`` around the
optimizer: ``gradfilter_ema`` / ``gradfilter_ma`` from ironjr/grokfast, ``OrthoGrad`` from
LucasPrietoAl/grokking-at-the-edge-of-numerical-stability, Omnigrok's ``L2``/``rescale``.
No grokexp code is imported: tests/engine/test_reducers.py (the paper's MLP) and
tests/arch/test_arch_settings.py (the transformer, the one-hot MLP) hold grokexp's reducers
against these.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import torch
from torch import nn


def gradfilter_ma(m: nn.Module, grads: dict[str, deque] | None = None, window_size: int = 100,
                  lamb: float = 5.0) -> dict[str, deque]:
    """ironjr/grokfast grokfast.py, filter_type='mean', warmup=True, trigger=False."""
    if grads is None:
        grads = {n: deque(maxlen=window_size) for n, p in m.named_parameters()
                 if p.requires_grad and p.grad is not None}
    for n, p in m.named_parameters():
        if p.requires_grad and p.grad is not None:
            grads[n].append(p.grad.data.detach())
            if len(grads[n]) == window_size:
                avg = sum(grads[n]) / len(grads[n])
                p.grad.data = p.grad.data + avg * lamb
    return grads


def gradfilter_ema(m: nn.Module, grads: dict[str, torch.Tensor] | None = None,
                   alpha: float = 0.98, lamb: float = 2.0) -> dict[str, torch.Tensor]:
    """ironjr/grokfast grokfast.py."""
    if grads is None:
        grads = {n: p.grad.data.detach() for n, p in m.named_parameters()
                 if p.requires_grad and p.grad is not None}
    for n, p in m.named_parameters():
        if p.requires_grad and p.grad is not None:
            grads[n] = grads[n] * alpha + p.grad.data.detach() * (1 - alpha)
            p.grad.data = p.grad.data + grads[n] * lamb
    return grads


@torch.no_grad()
def orthogonalize_gradients(params: list[nn.Parameter]) -> None:
    """OrthoGrad._orthogonalize_gradients (orthograd.py)."""
    for p in params:
        if p.grad is not None:
            w = p.view(-1)
            g = p.grad.view(-1)
            w_norm_sq = torch.dot(w, w) + 1e-30
            proj = torch.dot(w, g) / w_norm_sq
            g_orth = g - proj * w
            g_norm = g.norm(2)
            g_orth_norm = g_orth.norm(2) + 1e-30
            g_orth_scaled = g_orth * (g_norm / g_orth_norm)
            p.grad.copy_(g_orth_scaled.view_as(p.grad))


def omnigrok_l2(model: nn.Module) -> torch.Tensor:
    """Omnigrok mnist-landscape.ipynb ``L2``: the sum of squares of all parameters."""
    total: Any = 0.0
    for p in model.parameters():
        total += torch.sum(p**2)
    return total


def omnigrok_rescale(model: nn.Module, alpha: torch.Tensor) -> None:
    for p in model.parameters():
        p.data = alpha * p.data
