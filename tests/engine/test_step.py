"""The hand-written training step against autograd through ``model.logits``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from grokexp.engine.arch.mlp import MlpArch as Architecture
from grokexp.engine.arch.mlp import logits
from grokexp.engine.step import TrainStep

P = 7


def _params(arch: Architecture, k: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    d, widths = arch.embedding_dim, arch.hidden
    shapes = {"embedding": (P, d)}
    n_in = 2 * d
    for i, w in enumerate(widths):
        shapes[f"hidden.{i}.weight"] = (n_in, w)
        shapes[f"hidden.{i}.bias"] = (w,)
        n_in = w
    shapes["output.weight"] = (n_in, P)
    shapes["output.bias"] = (P,)
    return {n: torch.randn((k, *s), generator=g) * 0.5 for n, s in shapes.items()}


def _batch(k: int, n: int, seed: int = 1) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    left = torch.randint(0, P, (k, n), generator=g)
    right = torch.randint(0, P, (k, n), generator=g)
    return left, right, (left + right) % P


def _autograd_grads(params, arch, left, right, labels, masks=None):
    leaves = {n: t.clone().requires_grad_(True) for n, t in params.items()}
    out = logits(leaves, arch, left, right, masks)  # (K, B, P)
    k, b, p = out.shape
    loss = F.cross_entropy(out.reshape(k * b, p), labels.reshape(-1), reduction="none")
    loss.view(k, b).mean(1).sum().backward()
    return {n: t.grad for n, t in leaves.items()}


@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh"])
@pytest.mark.parametrize("embedding_activation", ["none", "relu"])
@pytest.mark.parametrize("hidden", [(16,), (12, 10)])
def test_step_gradients_match_autograd(activation, embedding_activation, hidden):
    arch = Architecture(P, 6, hidden, activation, embedding_activation)
    k, n, batch = 3, 11, 4  # batches of 4, 4 and a short last one of 3
    params = _params(arch, k)
    left, right, labels = _batch(k, n)
    step = TrainStep(arch, params, batch)
    plan = step.plan(left, right, labels)
    assert [b.size for b in plan] == [4, 4, 3]
    for index, minibatch in enumerate(plan):
        s = slice(4 * index, 4 * index + minibatch.size)
        step.step(params, minibatch)
        want = _autograd_grads(params, arch, left[:, s], right[:, s], labels[:, s])
        for name, grad in want.items():
            torch.testing.assert_close(step.grads[name], grad, rtol=1e-5, atol=1e-6,
                                       msg=f"{name} in batch {index}")


def test_step_with_dropout_matches_autograd_with_the_same_masks():
    arch = Architecture(P, 6, (16, 8), "relu", "none")
    k = 2
    params = _params(arch, k)
    left, right, labels = _batch(k, 5)
    drawn: dict[str, list[torch.Tensor]] = {}

    def recorder(gen_seed: int):
        g = torch.Generator().manual_seed(gen_seed)
        calls: list[torch.Tensor] = []
        drawn[str(gen_seed)] = calls

        def masks(site: str, shape: tuple[int, ...]) -> torch.Tensor:
            keep = (torch.rand(shape, generator=g) >= 0.3).float() / 0.7
            calls.append(keep)
            return keep
        return masks

    step = TrainStep(arch, params, 5)
    step.step(params, step.plan(left, right, labels)[0], recorder(3))
    want = _autograd_grads(params, arch, left, right, labels, recorder(3))
    assert len(drawn["3"]) == 3  # embedding, then one per hidden layer, in the model's order
    for name, grad in want.items():
        torch.testing.assert_close(step.grads[name], grad, rtol=1e-5, atol=1e-6, msg=name)
