"""The transformer population against an independent reference (reference_transformer.py):
logits, dropout sites, recorded activations, member independence, the twin and its export."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from reference import member, pair_grid
from reference_transformer import ReferenceTransformer

from grokexp.engine.arch.transformer import TransformerArch
from grokexp.spec.architectures import ARCHITECTURES

P, D, HEADS, D_MLP = 7, 16, 2, 32
# The population and the reference add and multiply in different orders (a fused QKV bmm and
# per-key products against nn.MultiheadAttention's matmuls): float32 rounding on logits of
# order 1 stays far below 1e-5 per op; a few dozen ops deep, 2e-5 absolute is ample.
ATOL = 2e-5


def arch(layers: int = 1, layer_norm: bool = False, activation: str = "relu") -> TransformerArch:
    return TransformerArch(P, D, HEADS, D_MLP, layers, layer_norm, activation)


def stacked(a: TransformerArch, k: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """K members' random weights (LayerNorm weights too, so they are seen to act)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for param in a.layout():
        std = 0.3 if param.constant is not None else param.fan_in ** -0.5
        base = 1.0 if param.constant == 1.0 else 0.0
        out[param.name] = base + std * torch.randn((k, *param.shape), generator=g)
    return out


def all_pairs(k: int) -> torch.Tensor:
    """Every pair for each of k members: (k, P², 2)."""
    return pair_grid(P).expand(k, -1, -1).contiguous()


CASES = [(1, False, "relu"), (1, True, "relu"), (2, False, "gelu"), (2, True, "relu")]


@pytest.mark.parametrize("k", [1, 2, 5])
@pytest.mark.parametrize("layers,layer_norm,activation", CASES)
def test_population_logits_equal_reference(k, layers, layer_norm, activation):
    a = arch(layers, layer_norm, activation)
    params = stacked(a, k, seed=k)
    pairs = all_pairs(k)
    logits = a.forward(params, pairs).logits
    assert logits.shape == (k, P * P, P)
    for index in range(k):
        ref = ReferenceTransformer.from_member(member(params, index), HEADS, layer_norm,
                                               activation)
        with torch.no_grad():
            expected = ref(pairs[index])
        assert expected.abs().max() > 0.1  # the logits are not trivially small
        torch.testing.assert_close(logits[index], expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("layers,layer_norm", [(1, False), (2, True)])
def test_member_alone_equals_member_in_population_bitwise(layers, layer_norm):
    a = arch(layers, layer_norm)
    params = {n: t.requires_grad_(True) for n, t in stacked(a, 5, seed=3).items()}
    g = torch.Generator().manual_seed(1)
    # each member the whole table in its own order: 49 rows and 7 classes are a shape where
    # MKL's batched and single sgemm round differently unless the forward guards against it
    pairs = torch.stack([all_pairs(1)[0][torch.randperm(P * P, generator=g)] for _ in range(5)])
    labels = (pairs[..., 0] + pairs[..., 1]) % P
    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The sum of the members' mean losses, one expression for K = 5 and K = 1."""
        return F.cross_entropy(logits.transpose(1, 2), labels, reduction="none").mean(1).sum()

    logits = a.forward(params, pairs).logits
    loss(logits, labels).backward()
    for index in (0, 2, 4):
        alone = {n: t[index:index + 1].detach().clone().requires_grad_(True)
                 for n, t in params.items()}
        own = a.forward(alone, pairs[index:index + 1]).logits
        assert torch.equal(own[0], logits[index])
        loss(own, labels[index:index + 1]).backward()
        for name, value in alone.items():
            assert value.grad is not None and params[name].grad is not None
            assert torch.equal(value.grad[0], params[name].grad[index]), name


@pytest.mark.parametrize("layers,layer_norm", [(1, False), (2, True)])
def test_twin_equals_reference(layers, layer_norm):
    a = arch(layers, layer_norm)
    weights = member(stacked(a, 2, seed=7), 1)
    twin = a.twin(weights)
    ref = ReferenceTransformer.from_member(weights, HEADS, layer_norm)
    pairs = all_pairs(1)[0]
    with torch.no_grad():
        torch.testing.assert_close(twin(pairs), ref(pairs), rtol=0, atol=ATOL)


def draw_masks(a: TransformerArch, k: int, n: int, rate: float, seed: int):
    """Keep-masks for every site occurrence, in ``mask_shapes`` order, as F.dropout scales
    them; and a ``masks`` callable that hands them out, checking site and shape."""
    g = torch.Generator().manual_seed(seed)
    drawn = [(site, (torch.rand((k, *shape), generator=g) >= rate).float() / (1 - rate))
             for site, shape in a.mask_shapes(n)]
    queue = list(drawn)

    def masks(site: str, shape: tuple[int, ...]) -> torch.Tensor:
        expected_site, mask = queue.pop(0)
        assert (site, shape) == (expected_site, tuple(mask.shape))
        return mask
    return drawn, queue, masks


@pytest.mark.parametrize("layers,layer_norm", [(1, False), (2, True), (2, False)])
def test_masks_at_every_site_match_reference(layers, layer_norm):
    a, k, n = arch(layers, layer_norm), 3, P * P
    params = stacked(a, k, seed=11)
    drawn, queue, masks = draw_masks(a, k, n, rate=0.3, seed=5)
    assert [s for s, _ in drawn] == ["embedding"] + ["attention", "mlp"] * layers
    logits = a.forward(params, all_pairs(k), masks).logits
    assert not queue  # every mask was asked for, in order
    clean = a.forward(params, all_pairs(k)).logits
    assert (logits - clean).abs().max() > 0.1  # the masks change the answer
    for index in range(k):
        per_site: dict[str, list[torch.Tensor]] = {"embedding": [], "attention": [], "mlp": []}
        for site, mask in drawn:
            per_site[site].append(mask[index])
        ref = ReferenceTransformer.from_member(member(params, index), HEADS, layer_norm)
        with torch.no_grad():
            expected, _ = ref.run(all_pairs(1)[0], per_site)
        torch.testing.assert_close(logits[index], expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("layers,layer_norm", [(1, False), (2, True)])
def test_record_returns_each_layers_activations(layers, layer_norm):
    a, k = arch(layers, layer_norm), 2
    params = stacked(a, k, seed=13)
    pairs = all_pairs(k)
    out = a.forward(params, pairs, record=("embedding", "attention", "mlp"))
    only_mlp = a.forward(params, pairs, record=("mlp",))
    assert set(out.activations) == set(a.sites) and set(only_mlp.activations) == {"mlp"}
    assert [t.shape for t in out.activations["embedding"]] == [(k, P * P, 3, D)]
    assert [t.shape for t in out.activations["mlp"]] == [(k, P * P, 3, D_MLP)] * layers
    assert [t.shape for t in out.activations["attention"]] == [(k, P * P, 3, D)] * layers
    # recording runs every position of the last layer; the logits stay the same
    torch.testing.assert_close(out.logits, a.forward(params, pairs).logits, rtol=0, atol=ATOL)
    for index in range(k):
        ref = ReferenceTransformer.from_member(member(params, index), HEADS, layer_norm)
        with torch.no_grad():
            _, hooks = ref.run(pairs[index])
        for site in a.sites:
            for ours, theirs in zip(out.activations[site], hooks[site], strict=True):
                torch.testing.assert_close(ours[index], theirs, rtol=0, atol=ATOL)
        torch.testing.assert_close(only_mlp.activations["mlp"][-1][index], hooks["mlp"][-1],
                                   rtol=0, atol=ATOL)
    assert (out.activations["mlp"][0] == 0).any()  # a ReLU site: some units are off
    with pytest.raises(ValueError, match="hidden"):
        a.forward(params, pairs, record=("hidden",))


def test_exported_twin_takes_any_number_of_pairs():
    a = arch(2, True)
    twin = a.twin(member(stacked(a, 1, seed=17), 0)).eval()
    example = all_pairs(1)[0][:8]
    n = torch.export.Dim("n", min=1, max=4096)
    program = torch.export.export(twin, (example,), dynamic_shapes=({0: n},))
    for count in (3, 49):
        pairs = all_pairs(1)[0][-count:]
        with torch.no_grad():
            torch.testing.assert_close(program.module()(pairs), twin(pairs), rtol=0, atol=1e-6)


def test_layout_groups_sites_and_views():
    a = arch(2, True, "gelu")
    facts = ARCHITECTURES["transformer"]
    assert (a.groups, a.sites) == (facts.groups, facts.sites)
    layout = {p.name: p for p in a.layout()}
    assert {p.group for p in layout.values()} == set(a.groups)
    assert layout["embedding"].shape == (P + 1, D) and layout["positional"].shape == (3, D)
    assert layout["blocks.1.attn.w_q"].shape == (D, D)
    assert (layout["blocks.0.mlp.w_in"].fan_in, layout["blocks.0.mlp.w_in"].fan_out) == (D, D_MLP)
    assert layout["unembed.weight"].shape == (D, P)
    assert layout["blocks.0.ln1.weight"].group == "attention"
    assert layout["blocks.0.ln2.bias"].group == "mlp"
    assert layout["ln_final.weight"].group == "unembed"
    assert {p.constant for p in layout.values() if ".ln" in p.name or "ln_" in p.name} == {
        1.0, 0.0}
    assert not any(n.startswith("blocks.0.ln") for n in {p.name for p in arch().layout()})
    assert a.relu_sites == () and arch().relu_sites == ("mlp",)
    params = stacked(a, 3)
    embedding = a.token_embedding(params)
    assert embedding is not None and embedding.shape == (3, P, D)
    assert torch.equal(embedding, params["embedding"][:, :P])
    assert a.embedding_params == ("embedding",)
    with pytest.raises(ValueError, match="n_heads"):
        TransformerArch(P, 10, 3)


def test_from_spec_reads_the_model_section():
    from grokexp.engine.arch import architecture_of
    from grokexp.spec.io import validate_spec

    spec = validate_spec({"name": "t", "task": {"modulus": 11},
                          "model": {"architecture": "transformer", "d_model": 24, "n_heads": 3,
                                    "d_mlp": 40, "n_layers": 2, "layer_norm": True,
                                    "activation": "gelu"}}, "t")
    a = architecture_of(spec)
    assert isinstance(a, TransformerArch)
    assert (a.n_tokens, a.n_classes, a.d_model, a.n_heads, a.d_head, a.d_mlp, a.n_layers,
            a.layer_norm, a.activation) == (11, 11, 24, 3, 8, 40, 2, True, "gelu")
    nanda = architecture_of(validate_spec({"name": "n", "task": {"modulus": 113},
                                           "model": {"architecture": "transformer"}}, "n"))
    assert isinstance(nanda, TransformerArch)
    assert (nanda.d_model, nanda.n_heads, nanda.d_mlp, nanda.n_layers, nanda.layer_norm,
            nanda.activation) == (128, 4, 512, 1, False, "relu")
