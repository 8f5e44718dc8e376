"""A transformer member trained by grokexp (a population of 3, autograd over the batched forward,
the population's AdamW) against the reference (reference_transformer.py) trained the textbook
way with ``torch.optim.AdamW``, and against itself trained alone."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from reference import reference_training as shared_training
from reference_transformer import ReferenceTransformer

from grokexp.engine.data import make_splits, pair_table
from grokexp.engine.init import init_member
from grokexp.engine.model import Population
from grokexp.engine.sweep import Member, expand_members
from grokexp.engine.train import TrainData, train
from grokexp.spec.io import validate_spec
from grokexp.spec.schema import Spec

P = 7
METRICS = ("train_acc", "test_acc", "train_loss", "test_loss")


def raw_spec(layers: int, layer_norm: bool) -> dict[str, Any]:
    # 49 pairs, half to train (24): batches of 12 are 2 steps an epoch, 25 epochs 50 steps
    return {"name": "transformer", "task": {"modulus": P},
            "model": {"architecture": "transformer", "d_model": 16, "n_heads": 2, "d_mlp": 32,
                      "n_layers": layers, "layer_norm": layer_norm},
            "train": {"epochs": 25, "batch_size": 12, "lr": 3e-3, "weight_decay": 1.0,
                      "betas": [0.9, 0.98]},
            "metrics": {"every": 5}, "sweep": {"seeds": [0, 1, 2]}}


def reference_training(spec: Spec) -> tuple[dict[str, list[float]], ReferenceTransformer]:
    """One member trained the textbook way (tests/reference.py's loop): grokexp gives only the
    initial weights, the split and the batch order."""
    m = spec.model
    net = ReferenceTransformer.from_member(init_member(spec), m.n_heads, m.layer_norm,
                                           m.activation)
    return shared_training(spec, net, net), net


def grokexp_training(members: list[Member]) -> tuple[Any, Population]:
    spec = members[0].spec
    table = pair_table(spec.task)
    splits = make_splits(spec.task, table, [m.spec.train.split_seed for m in members])
    population = Population.from_specs([m.spec for m in members], torch.device("cpu"))
    return train(population, members, TrainData(table, splits)), population


@pytest.mark.parametrize("layers,layer_norm", [(1, False), (2, True)])
def test_member_equals_reference_adamw_and_itself_alone(layers, layer_norm):
    members = expand_members(validate_spec(raw_spec(layers, layer_norm), "transformer"))
    assert len(members) == 3
    together, population = grokexp_training(members)
    chosen = members[1]
    alone, alone_population = grokexp_training([Member(0, chosen.spec, chosen.varied)])
    ours, theirs = together.by_index(chosen.index), alone.members[0]
    assert ours.epochs == theirs.epochs == [0, 5, 10, 15, 20, 25]
    for name in METRICS:  # bitwise on the CPU: members never mix
        assert ours.metrics[name] == theirs.metrics[name], name

    reference, net = reference_training(chosen.spec)
    assert ours.epochs == reference["epochs"]
    assert reference["train_loss"][-1] < 0.8 * reference["train_loss"][0]  # it did learn
    for name in ("train_loss", "test_loss"):
        gap = max(abs(x - y) for x, y in zip(ours.metrics[name], reference[name], strict=True))
        # float32: autograd through different op orders (per-key products against
        # nn.MultiheadAttention's matmuls), then 50 AdamW steps; measured gaps are ~5e-7
        assert gap < 5e-6, (name, gap)
    for name in ("train_acc", "test_acc"):
        gap = max(abs(x - y) for x, y in zip(ours.metrics[name], reference[name], strict=True))
        assert gap <= 1 / 24 + 1e-6, name  # one pair at most (a near tie may flip)
    # every final weight too (the population keeps every member: none groks in 50 steps);
    # measured gaps ~2e-7 on weights of order 0.1..1
    assert population.params["embedding"].shape[0] == 3
    final = {name: value.detach() for name, value in net.named_parameters()}
    theirs_by_name = reference_names(final, layers, layer_norm)
    assert set(theirs_by_name) == set(population.params)  # every parameter is compared
    start = population_init(members)
    for name, theirs in theirs_by_name.items():
        ours_now = population.params[name][chosen.index].detach()
        if not name.endswith("ln1.bias"):  # (a bias of zeros may barely move)
            assert (ours_now - start[name][chosen.index]).abs().max() > 1e-4, name  # it moved
        torch.testing.assert_close(ours_now, theirs, rtol=0, atol=2e-6)
        # and the member trained alone ends on the same bits
        assert torch.equal(alone_population.params[name][0], ours_now), name


def reference_names(final: dict[str, torch.Tensor], layers: int,
                    layer_norm: bool) -> dict[str, torch.Tensor]:
    """The reference's parameters under grokexp's names, (in, out) as grokexp stores them."""
    out = {"embedding": final["token.weight"], "positional": final["position.weight"],
           "unembed.weight": final["unembed.weight"].T}
    for layer in range(layers):
        ref, ours = f"blocks.{layer}.", f"blocks.{layer}."
        q, k, v = final[ref + "attn.in_proj_weight"].chunk(3)
        out.update({ours + "attn.w_q": q.T, ours + "attn.w_k": k.T, ours + "attn.w_v": v.T,
                    ours + "attn.w_o": final[ref + "attn.out_proj.weight"].T,
                    ours + "mlp.w_in": final[ref + "fc_in.weight"].T,
                    ours + "mlp.b_in": final[ref + "fc_in.bias"],
                    ours + "mlp.w_out": final[ref + "fc_out.weight"].T,
                    ours + "mlp.b_out": final[ref + "fc_out.bias"]})
        if layer_norm:
            out.update({ours + f"{ln}.{part}": final[ref + f"{ln}.{part}"]
                        for ln in ("ln1", "ln2") for part in ("weight", "bias")})
    if layer_norm:
        out.update({f"ln_final.{part}": final[f"ln_final.{part}"] for part in ("weight", "bias")})
    return out


def population_init(members: list[Member]) -> dict[str, torch.Tensor]:
    return Population.from_specs([m.spec for m in members], torch.device("cpu")).params
