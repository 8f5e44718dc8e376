"""The one-hot MLP population against an independent reference (reference_onehot.py): logits,
the dropout site, recorded activations, member independence, the twin and its export."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from reference import member, pair_grid
from reference_onehot import ReferenceOneHotMlp

from grokexp.engine.arch import ARCHES, architecture_of
from grokexp.engine.arch.onehot_mlp import OneHotMlpArch
from grokexp.spec.architectures import ARCHITECTURES
from grokexp.spec.io import validate_spec

P = 7
# The population gathers two rows of W1 and adds the bias; the reference multiplies the full
# one-hot matrix by W1 (nn.Linear): float32 sums in another order, a few ulps of values of
# order 1 per layer; three layers deep, 1e-5 absolute is ample and far below the logits.
ATOL = 1e-5
WIDTHS = [[8, 8], 16, [9, 5]]  # [9, 5]: odd widths (the forward pads them to multiples of 4)


def stacked(a: OneHotMlpArch, k: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """K members' random weights at about Xavier's scale, biases too (so they are seen)."""
    g = torch.Generator().manual_seed(seed)
    return {p.name: torch.randn((k, *p.shape), generator=g) * (2 / (p.fan_in + p.fan_out)) ** 0.5
            * (3.0 if p.name.startswith("hidden.0") else 1.0)
            for p in a.layout()}


def all_pairs(k: int) -> torch.Tensor:
    """Every pair for each of k members: (k, P², 2)."""
    return pair_grid(P).expand(k, -1, -1).contiguous()


@pytest.mark.parametrize("k", [1, 2, 5])
@pytest.mark.parametrize("hidden,activation", [([8, 8], "relu"), (16, "gelu"), ([9, 5], "tanh")])
def test_population_logits_equal_reference(k, hidden, activation):
    a = OneHotMlpArch(P, hidden, activation)
    params = stacked(a, k, seed=k)
    pairs = all_pairs(k)
    logits = a.forward(params, pairs).logits
    assert logits.shape == (k, P * P, P)
    for index in range(k):
        ref = ReferenceOneHotMlp.from_member(member(params, index), activation)
        with torch.no_grad():
            expected = ref(pairs[index])
        assert expected.abs().max() > 0.1  # the logits are not trivially small
        torch.testing.assert_close(logits[index], expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("hidden", WIDTHS)
@pytest.mark.parametrize("dropout", [False, True])
def test_member_alone_equals_member_in_population_bitwise(hidden, dropout):
    a, k = OneHotMlpArch(P, hidden), 5
    params = {n: t.requires_grad_(True) for n, t in stacked(a, k, seed=3).items()}
    g = torch.Generator().manual_seed(1)
    # each member the whole table in its own order: 49 rows and 7 classes are a shape where
    # MKL's batched and single sgemm round differently unless the forward guards against it
    pairs = torch.stack([all_pairs(1)[0][torch.randperm(P * P, generator=g)] for _ in range(k)])
    labels = (pairs[..., 0] + pairs[..., 1]) % P
    drawn = [(torch.rand((k, *shape), generator=g) >= 0.3).float() / 0.7
             for _, shape in a.mask_shapes(P * P)]

    def masks_of(index: slice):
        queue = iter(drawn)
        return (lambda site, shape: next(queue)[index]) if dropout else None

    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The sum of the members' mean losses, one expression for K = 5 and K = 1."""
        return F.cross_entropy(logits.transpose(1, 2), labels, reduction="none").mean(1).sum()

    out = a.forward(params, pairs, masks_of(slice(None)), record=("hidden",))
    loss(out.logits, labels).backward()
    for index in range(k):
        alone = {n: t[index:index + 1].detach().clone().requires_grad_(True)
                 for n, t in params.items()}
        own = a.forward(alone, pairs[index:index + 1], masks_of(slice(index, index + 1)),
                        record=("hidden",))
        assert torch.equal(own.logits[0], out.logits[index])
        for mine, theirs in zip(own.activations["hidden"], out.activations["hidden"],
                                strict=True):
            assert torch.equal(mine[0], theirs[index])
        loss(own.logits, labels[index:index + 1]).backward()
        for name, value in alone.items():
            assert value.grad is not None and params[name].grad is not None
            assert torch.equal(value.grad[0], params[name].grad[index]), name


@pytest.mark.parametrize("hidden", WIDTHS)
def test_masks_at_hidden_match_reference(hidden):
    a, k, n = OneHotMlpArch(P, hidden, "gelu"), 3, P * P
    params = stacked(a, k, seed=11)
    widths = [hidden] if isinstance(hidden, int) else hidden
    assert a.mask_shapes(n) == [("hidden", (n, w)) for w in widths]
    g = torch.Generator().manual_seed(5)
    drawn = [(torch.rand((k, *shape), generator=g) >= 0.3).float() / 0.7
             for _, shape in a.mask_shapes(n)]
    queue = list(drawn)

    def masks(site: str, shape: tuple[int, ...]) -> torch.Tensor:
        mask = queue.pop(0)
        assert (site, shape) == ("hidden", tuple(mask.shape))
        return mask

    logits = a.forward(params, all_pairs(k), masks).logits
    assert not queue  # every mask was asked for, in order
    clean = a.forward(params, all_pairs(k)).logits
    assert (logits - clean).abs().max() > 0.1  # the masks change the answer
    for index in range(k):
        ref = ReferenceOneHotMlp.from_member(member(params, index), "gelu")
        with torch.no_grad():
            expected, _ = ref.run(all_pairs(1)[0], [m[index] for m in drawn])
        torch.testing.assert_close(logits[index], expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("hidden", WIDTHS)
def test_record_returns_each_layers_activations(hidden):
    a, k = OneHotMlpArch(P, hidden), 2
    params = stacked(a, k, seed=13)
    pairs = all_pairs(k)
    out = a.forward(params, pairs, record=("hidden",))
    assert a.forward(params, pairs).activations == {}
    widths = [hidden] if isinstance(hidden, int) else hidden
    assert [t.shape for t in out.activations["hidden"]] == [(k, P * P, w) for w in widths]
    assert torch.equal(out.logits, a.forward(params, pairs).logits)
    # recorded before dropout: masks that zero everything leave the activations unchanged
    dropped = a.forward(params, pairs, lambda site, shape: torch.zeros(shape),
                        record=("hidden",))
    assert torch.equal(dropped.activations["hidden"][0], out.activations["hidden"][0])
    for index in range(k):
        ref = ReferenceOneHotMlp.from_member(member(params, index))
        with torch.no_grad():
            _, recorded = ref.run(pairs[index])
        for ours, theirs in zip(out.activations["hidden"], recorded, strict=True):
            torch.testing.assert_close(ours[index], theirs, rtol=0, atol=ATOL)
    assert (out.activations["hidden"][0] == 0).any()  # a ReLU site: some units are off
    assert (out.activations["hidden"][0] > 0).any()


@pytest.mark.parametrize("hidden,activation", [([8, 8], "relu"), (16, "tanh"), ([9, 5], "gelu")])
def test_twin_equals_reference(hidden, activation):
    a = OneHotMlpArch(P, hidden, activation)
    weights = member(stacked(a, 2, seed=7), 1)
    twin = a.twin(weights)
    assert not any(isinstance(m, OneHotMlpArch) for m in twin.modules())
    ref = ReferenceOneHotMlp.from_member(weights, activation)
    pairs = all_pairs(1)[0]
    with torch.no_grad():
        torch.testing.assert_close(twin(pairs), ref(pairs), rtol=0, atol=ATOL)


def test_exported_twin_takes_any_number_of_pairs():
    a = OneHotMlpArch(P, [8, 8])
    twin = a.twin(member(stacked(a, 1, seed=17), 0)).eval()
    example = all_pairs(1)[0][:8]
    n = torch.export.Dim("n", min=1, max=4096)
    program = torch.export.export(twin, (example,), dynamic_shapes=({0: n},))
    g = torch.Generator().manual_seed(2)
    for count in (3, 50):
        pairs = torch.randint(0, P, (count, 2), generator=g)
        with torch.no_grad():
            got = program.module()(pairs)
            assert got.shape == (count, P)
            torch.testing.assert_close(got, twin(pairs), rtol=0, atol=1e-6)


def test_layout_groups_sites_and_views():
    a = OneHotMlpArch(P, [8, 6], "gelu")
    facts = ARCHITECTURES["onehot_mlp"]
    assert (a.name, a.groups, a.sites) == ("onehot_mlp", facts.groups, facts.sites)
    assert ARCHES["onehot_mlp"] is OneHotMlpArch
    layout = {p.name: p for p in a.layout()}
    assert list(layout) == ["hidden.0.weight", "hidden.0.bias", "hidden.1.weight",
                            "hidden.1.bias", "output.weight", "output.bias"]
    assert layout["hidden.0.weight"].shape == (2 * P, 8)
    assert (layout["hidden.0.weight"].fan_in, layout["hidden.0.weight"].fan_out) == (2 * P, 8)
    assert (layout["hidden.1.bias"].shape, layout["hidden.1.bias"].is_bias) == ((6,), True)
    assert layout["output.weight"].shape == (6, P) and layout["output.bias"].shape == (P,)
    assert {p.group for p in layout.values()} == set(a.groups)
    assert layout["output.bias"].group == "output" and layout["hidden.1.weight"].group == "hidden"
    assert a.relu_sites == () and OneHotMlpArch(P, 8).relu_sites == ("hidden",)
    params = stacked(a, 3)
    embedding = a.token_embedding(params)
    assert embedding.shape == (3, P, 16)
    w1 = params["hidden.0.weight"]
    for i in range(P):  # row i: the left operand's row of W1, then the right operand's
        assert torch.equal(embedding[:, i], torch.cat([w1[:, i], w1[:, P + i]], dim=1))
    assert a.embedding_params == ("hidden.0.weight",)
    with pytest.raises(ValueError, match="activation"):
        OneHotMlpArch(P, 8, "swish")


def test_from_spec():
    spec = validate_spec({"name": "onehot", "task": {"modulus": P},
                          "model": {"architecture": "onehot_mlp", "hidden": [8, 6],
                                    "activation": "tanh"}}, "onehot")
    a = architecture_of(spec)
    assert isinstance(a, OneHotMlpArch)
    assert (a.n_tokens, a.n_classes, a.hidden, a.activation) == (P, P, (8, 6), "tanh")
    one = validate_spec({"name": "onehot", "task": {"modulus": 5},
                         "model": {"architecture": "onehot_mlp", "hidden": 12}}, "onehot")
    b = OneHotMlpArch.from_spec(one)
    assert (b.n_tokens, b.hidden, b.activation) == (5, (12,), "relu")
