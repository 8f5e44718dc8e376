"""Per-member AdamW settings and every reducer on the transformer (1 layer; 2 layers with
LayerNorm) and the one-hot MLP, trained by autograd in one population.

Each member differs from a baseline in one setting (lr, weight decay, betas, eps,
``embedding_lr_scale``, Grokfast EMA, Grokfast MA, ⊥Grad, Omnigrok's fixed or given norm, a
frozen group) or in all of them at once, and equals the plain reference module
(reference_transformer.py, reference_onehot.py) trained with ``torch.optim.AdamW`` with that
member's settings and the reducers as their authors apply them to ``p.grad``
(tests/authors_reducers.py, copied from the authors' repositories).
grokexp gives only the initial weights, the split and the batch order.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from authors_reducers import (
    gradfilter_ema,
    gradfilter_ma,
    omnigrok_l2,
    omnigrok_rescale,
    orthogonalize_gradients,
)
from reference import reference_training as shared_training
from reference_onehot import ReferenceOneHotMlp
from reference_transformer import ReferenceTransformer
from torch import nn

from grokexp.engine import optim
from grokexp.engine.data import make_splits, pair_table
from grokexp.engine.init import init_member
from grokexp.engine.model import Population
from grokexp.engine.sweep import Member
from grokexp.engine.train import TrainData, train
from grokexp.spec.io import validate_spec
from grokexp.spec.schema import Spec

P = 7
MODELS: dict[str, dict[str, Any]] = {
    "transformer": {"architecture": "transformer", "d_model": 16, "n_heads": 2, "d_mlp": 32,
                    "n_layers": 1, "layer_norm": False},
    "transformer_ln2": {"architecture": "transformer", "d_model": 16, "n_heads": 2,
                        "d_mlp": 32, "n_layers": 2, "layer_norm": True},
    "onehot_mlp": {"architecture": "onehot_mlp", "hidden": [8, 8]},
}
# the group a member freezes, and its parameters as grokexp names them (written out here)
FROZEN = {"transformer": ("attention", ["blocks.0.attn.w_q", "blocks.0.attn.w_k",
                                         "blocks.0.attn.w_v", "blocks.0.attn.w_o"]),
          "transformer_ln2": ("attention", [f"blocks.{i}.{n}" for i in (0, 1) for n in (
              "attn.w_q", "attn.w_k", "attn.w_v", "attn.w_o", "ln1.weight", "ln1.bias")]),
          "onehot_mlp": ("output", ["output.weight", "output.bias"])}
# Omnigrok's given norm: about 0.8 of each model's initial norm (11.6, 17.9, 5.5)
GIVEN_NORM = {"transformer": 9.0, "transformer_ln2": 14.0, "onehot_mlp": 4.5}
EMBEDDING = {"transformer": "embedding", "transformer_ln2": "embedding",
             "onehot_mlp": "hidden.0.weight"}
# 49 pairs, half to train (24): batches of 12 are 2 steps an epoch, 15 epochs 30 steps
TRAIN: dict[str, Any] = {"epochs": 15, "batch_size": 12, "lr": 3e-3, "weight_decay": 1.0,
                         "betas": [0.9, 0.98]}
VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {}, "lr": {"lr": 1e-2}, "weight_decay": {"weight_decay": 0.1},
    "betas": {"betas": [0.5, 0.9]}, "eps": {"eps": 1e-3},
    "embedding_lr_scale": {"embedding_lr_scale": 4.0},
    "ema": {"grad_filter": {"kind": "ema", "alpha": 0.9, "lamb": 2.0}},
    "ma": {"grad_filter": {"kind": "ma", "window": 4, "lamb": 5.0}},  # full from step 4
    "ortho": {"orthogonal_grad": True}, "fixed_norm": {"weight_norm": "fixed"},
    "given_norm": {}, "frozen": {"grad_filter": {"kind": "ema"}},
    "all": {"lr": 5e-3, "weight_decay": 0.3, "betas": [0.8, 0.99], "eps": 1e-6,
            "embedding_lr_scale": 0.5, "grad_filter": {"kind": "ma", "window": 3, "lamb": 2.0},
            "orthogonal_grad": True, "weight_norm": "fixed"},
}
# float32: autograd through other op orders than the reference's (per-key attention products
# against nn.MultiheadAttention's matmuls, a gather against the one-hot matmul), the fused
# AdamW kernel, the MA's running sum against Python's sum, ⊥Grad's and the norm's sums in
# another order; 30 steps of AdamW (dividing by sqrt(v)) carry ~1e-7 per op into weights of
# order 0.1..1 (measured: at most 2.1e-6). Each setting moves the weights by over 100× this.
ATOL = 2e-5


def spec_of(model: str, variant: str, **train: Any) -> Spec:
    raw: dict[str, Any] = {"name": "settings", "task": {"modulus": P}, "model": MODELS[model],
                           "train": {**TRAIN, **VARIANTS[variant], **train},
                           "metrics": {"every": 5}}
    if variant == "given_norm":
        raw["train"]["weight_norm"] = GIVEN_NORM[model]
    if variant == "frozen":
        raw["init"] = {FROZEN[model][0]: {"trainable": False}}
    return validate_spec(raw, "settings")


# ------------------------------------------------ the reference modules, by grokexp's names


def reference_net(model: str, spec: Spec) -> nn.Module:
    state = init_member(spec)
    if model == "onehot_mlp":
        return ReferenceOneHotMlp.from_member(state, spec.model.activation)
    return ReferenceTransformer.from_member(state, spec.model.n_heads, spec.model.layer_norm,
                                            spec.model.activation)


# the reference's parameter names → grokexp's (the one-hot MLP's are the same)
RENAMES = [("token.weight", "embedding"), ("position.weight", "positional"),
           ("attn.out_proj.weight", "attn.w_o"), ("fc_in.weight", "mlp.w_in"),
           ("fc_in.bias", "mlp.b_in"), ("fc_out.weight", "mlp.w_out"),
           ("fc_out.bias", "mlp.b_out")]


def as_grokexp(net: nn.Module) -> dict[str, torch.Tensor]:
    """The reference's weights under grokexp's names and (in, out) layout."""
    out = {}
    for name, p in net.named_parameters():
        if name.endswith("in_proj_weight"):  # q, k, v stacked along the output rows
            for part, rows in zip(("w_q", "w_k", "w_v"), p.detach().chunk(3), strict=True):
                out[name.replace("in_proj_weight", part)] = rows.T
            continue
        for theirs, ours in RENAMES:
            name = name.replace(theirs, ours)
        tables = ("embedding", "positional")  # kept (rows, d) as nn.Embedding keeps them
        out[name] = p.detach().T if p.dim() == 2 and name not in tables else p.detach()
    return out


def frozen_params(model: str, net: nn.Module) -> list[nn.Parameter]:
    if model == "onehot_mlp":
        return list(net.output.parameters())  # type: ignore[union-attr]
    return [p for n, p in net.named_parameters() if ".attn." in n or ".ln1." in n]


def ortho_units(net: nn.Module) -> list[torch.Tensor]:
    """⊥Grad acts per parameter tensor; grokexp's tensors (Nanda's W_Q, W_K, W_V apart) are
    one per unit, where nn.MultiheadAttention stacks the three: it is projected per third
    (a view of its weights whose ``.grad`` is the view of its gradient, so the authors' code
    rewrites that third of ``p.grad`` in place)."""
    units = []
    for n, p in net.named_parameters():
        if p.grad is None:
            continue
        if n.endswith("in_proj_weight"):
            for weight, grad in zip(p.detach().chunk(3), p.grad.chunk(3), strict=True):
                weight.grad = grad
                units.append(weight)
        else:
            units.append(p)
    return units


def reference_training(model: str, spec: Spec) -> nn.Module:
    """One member trained the textbook way (tests/reference.py's loop) with its settings and
    the reducers as their authors apply them."""
    t, f = spec.train, spec.train.grad_filter
    net = reference_net(model, spec)
    frozen = frozen_params(model, net) if not spec.init.trainable(FROZEN[model][0]) else []
    for p in frozen:
        p.requires_grad_(False)
    target = (omnigrok_l2(net).detach() if t.weight_norm == "fixed"
              else torch.tensor(float(t.weight_norm or 0.0) ** 2))
    state: Any = None  # the filter's: an EMA dict or a deque per parameter

    def groups(net: nn.Module) -> list[dict[str, Any]]:
        first = net.hidden[0].weight if model == "onehot_mlp" else net.token.weight  # type: ignore
        rest = [p for p in net.parameters() if p is not first and p.requires_grad]
        return [{"params": [first], "lr": t.lr * t.embedding_lr_scale}, {"params": rest}]

    def after_backward(net: nn.Module) -> None:
        nonlocal state
        if f is not None and f.kind == "ema":
            state = gradfilter_ema(net, state, f.alpha, f.lamb)
        elif f is not None and f.kind == "ma":
            state = gradfilter_ma(net, state, f.window, f.lamb)
        if t.orthogonal_grad:
            # gradfilter_ma's deque holds p.grad itself until its window fills, and
            # OrthoGrad's copy_ would rewrite that history; the MA is a mean of gradients,
            # so ⊥Grad gets a fresh tensor (as grokexp's ring keeps its own copy)
            for p in net.parameters():
                if p.grad is not None:
                    p.grad = p.grad.clone()
            orthogonalize_gradients(ortho_units(net))

    def after_step(net: nn.Module) -> None:
        if t.weight_norm is not None:
            with torch.no_grad():
                omnigrok_rescale(net, torch.sqrt(target / omnigrok_l2(net)))

    shared_training(spec, net, net, groups, after_backward, after_step)
    return net


def grokexp_training(members: list[Member]) -> Population:
    spec = members[0].spec
    table = pair_table(spec.task)
    splits = make_splits(spec.task, table, [m.spec.train.split_seed for m in members])
    population = Population.from_specs([m.spec for m in members], torch.device("cpu"))
    train(population, members, TrainData(table, splits))
    return population


# the fused AdamW kernel (what the CPU runs) for every model; the tensor-op update once each
# for a transformer with LayerNorm and for the one-hot MLP
@pytest.mark.parametrize("model,fused", [*((m, True) for m in MODELS),
                                         ("transformer_ln2", False), ("onehot_mlp", False)])
def test_every_setting_and_reducer_matches_the_reference(model, fused, one_thread,
                                                         monkeypatch):
    if not fused:
        monkeypatch.setattr(optim, "_fused_available", lambda like: False)
    members = [Member(k, spec_of(model, v), {}) for k, v in enumerate(VARIANTS)]
    population = grokexp_training(members)
    assert population.params[EMBEDDING[model]].shape[0] == len(VARIANTS)  # nobody left
    ours = {v: {n: t[k].detach() for n, t in population.params.items()}
            for k, v in enumerate(VARIANTS)}
    start = init_member(members[0].spec)
    for member, variant in zip(members, VARIANTS, strict=True):
        theirs = as_grokexp(reference_training(model, member.spec))
        assert set(theirs) == set(ours[variant])
        for name, value in theirs.items():
            torch.testing.assert_close(ours[variant][name], value, rtol=0, atol=ATOL,
                                       msg=f"{variant} {name}")
        if variant != "baseline":  # the setting matters far beyond the tolerance
            moved = max(float((ours[variant][n] - ours["baseline"][n]).abs().max())
                        for n in start)
            assert moved > 100 * ATOL, (variant, moved)
    frozen = FROZEN[model][1]
    for name, value in start.items():  # the frozen group never moved; the rest did
        assert torch.equal(ours["frozen"][name], value) == (name in frozen), name
    # the member with everything at once trains alone as in the population, bitwise
    alone = grokexp_training([Member(0, members[-1].spec, {})])
    for name, value in alone.params.items():
        assert torch.equal(value[0], ours["all"][name]), name


@pytest.mark.parametrize("model", list(MODELS))
def test_embedding_lr_scale_scales_the_embedding_alone(model, one_thread):
    """One full-batch AdamW step without decay from the same weights moves each element by
    ``lr·scale·g/(|g| + eps)``: four times as far in the embedding (the one-hot MLP's first
    layer) at scale 4, exactly as far in every other parameter."""
    specs = [spec_of(model, "baseline", epochs=1, batch_size=24, weight_decay=0.0, lr=1e-2,
                     embedding_lr_scale=scale) for scale in (1.0, 4.0)]
    population = grokexp_training([Member(k, s, {}) for k, s in enumerate(specs)])
    start = init_member(specs[0])
    for name, value in population.params.items():
        one, four = (value[k].detach() - start[name] for k in (0, 1))
        assert one.abs().max() > 1e-3, name  # it moved (by lr = 1e-2 where g ≫ eps)
        if name == EMBEDDING[model]:
            # the difference of float32 weights of order 1: a few ulps of 1 (1.2e-7)
            torch.testing.assert_close(four, 4 * one, rtol=0, atol=5e-7)
        else:
            assert torch.equal(four, one), name
