"""The paper's MLP as an architecture: its forward, masks, recorded sites and plain twin against
a reference written here from the definition (concat(E[a], E[b]), activation layers, a linear
output; weights stored in × out)."""

from __future__ import annotations

import pytest
import torch

from grokexp.engine.arch import ARCHES
from grokexp.engine.arch.mlp import MlpArch
from grokexp.spec.architectures import ARCHITECTURES

P, D, HIDDEN = 7, 6, (12, 10)
ACT = {"relu": torch.relu, "gelu": torch.nn.functional.gelu, "tanh": torch.tanh,
       "none": lambda x: x}
# float32 matmuls in another order (a table gather-and-add against a plain concat @ W):
# a few ulps of logits of order 10
TOL = {"rtol": 1e-5, "atol": 1e-5}


def _params(arch: MlpArch, k: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {p.name: torch.randn((k, *p.shape), generator=g) * 0.5 for p in arch.layout()}


def _reference(params, member: int, pairs: torch.Tensor, activation: str, emb_act: str,
               keeps: list[torch.Tensor] | None = None):
    """One member's logits and hidden outputs (before dropout), written out plainly."""
    w = {n: t[member] for n, t in params.items()}
    emb = ACT[emb_act](w["embedding"])
    x = torch.cat([emb[pairs[:, 0]], emb[pairs[:, 1]]], dim=1)  # (N, 2d)
    if keeps is not None:
        x = x * keeps[0]
    hidden = []
    for layer in range(len(HIDDEN)):
        x = ACT[activation](x @ w[f"hidden.{layer}.weight"] + w[f"hidden.{layer}.bias"])
        hidden.append(x)
        if keeps is not None:
            x = x * keeps[layer + 1]
    return x @ w["output.weight"] + w["output.bias"], hidden


def test_the_mlp_declares_what_the_spec_says():
    arch = MlpArch(P, D, HIDDEN)
    facts = ARCHITECTURES["mlp"]
    assert ARCHES["mlp"] is MlpArch and arch.name == "mlp"
    assert (arch.groups, arch.sites) == (facts.groups, facts.sites)
    assert {p.group for p in arch.layout()} == set(facts.groups)
    assert [p.name for p in arch.layout() if p.is_bias] == [
        "hidden.0.bias", "hidden.1.bias", "output.bias"]
    assert (arch.n_tokens, arch.n_classes) == (P, P)


@pytest.mark.parametrize(("activation", "emb_act"), [("relu", "none"), ("gelu", "relu")])
@pytest.mark.parametrize("dropout", [False, True])
def test_forward_matches_the_plain_reference(activation, emb_act, dropout):
    arch = MlpArch(P, D, HIDDEN, activation, emb_act)
    k, n = 3, 9
    params = _params(arch, k)
    g = torch.Generator().manual_seed(1)
    pairs = torch.randint(0, P, (k, n, 2), generator=g)
    drawn = [(torch.rand((k, *shape), generator=g) >= 0.4).float() / 0.6
             for _, shape in arch.mask_shapes(n)]
    asked: list[tuple[str, tuple[int, ...]]] = []

    def masks(site, shape):
        asked.append((site, shape))
        return drawn[len(asked) - 1]

    out = arch.forward(params, pairs, masks if dropout else None, record=("hidden",))
    if dropout:  # asked in the order mask_shapes lists, at its shapes
        assert asked == [(site, (k, *shape)) for site, shape in arch.mask_shapes(n)]
    assert out.logits.shape == (k, n, P) and len(out.activations["hidden"]) == len(HIDDEN)
    for member in range(k):
        keeps = [m[member] for m in drawn] if dropout else None
        want, hidden = _reference(params, member, pairs[member], activation, emb_act, keeps)
        torch.testing.assert_close(out.logits[member], want, **TOL)
        for got, expected in zip(out.activations["hidden"], hidden, strict=True):
            torch.testing.assert_close(got[member], expected, **TOL)


def test_shared_pairs_and_token_embedding_and_relu_sites():
    arch = MlpArch(P, D, HIDDEN, "relu", "relu")
    params = _params(arch, 2)
    pairs = torch.cartesian_prod(torch.arange(P), torch.arange(P))  # (N, 2), all members
    torch.testing.assert_close(arch.logits(params, pairs.expand(2, -1, -1))[1],
                               _reference(params, 1, pairs, "relu", "relu")[0], **TOL)
    torch.testing.assert_close(arch.token_embedding(params), torch.relu(params["embedding"]))
    assert arch.relu_sites == ("hidden",) and MlpArch(P, D, HIDDEN, "tanh").relu_sites == ()
    assert arch.embedding_params == ("embedding",) and arch.hand_written_step


def test_the_twin_is_one_member_as_a_plain_module():
    arch = MlpArch(P, D, HIDDEN, "gelu", "relu")
    params = _params(arch, 2)
    twin = arch.twin({n: t[1] for n, t in params.items()})
    assert isinstance(twin, torch.nn.Module)
    pairs = torch.cartesian_prod(torch.arange(P), torch.arange(P))
    with torch.no_grad():
        torch.testing.assert_close(twin(pairs), _reference(params, 1, pairs, "gelu", "relu")[0],
                                   **TOL)
