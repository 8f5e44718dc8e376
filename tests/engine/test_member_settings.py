"""Every value a member may vary reaches that member (or splits the population).

Sweeping ``train.betas`` or ``train.eps`` once trained every member with member 0's values.
Here a member trained in a population that sweeps them gets the history it gets alone, and
that history is the one a plain ``nn.Module`` (tests/reference.py) trained with
``torch.optim.AdamW`` gets.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from reference import plain_training

from grokexp.engine.optim import PopulationAdamW
from grokexp.engine.sweep import PER_MEMBER, Member, expand_members, group_by_shape, shape_key
from grokexp.engine.train import MemberSeries
from grokexp.run.runner import train_group
from grokexp.spec.io import validate_spec
from grokexp.spec.schema import Spec

CPU = torch.device("cpu")
BASE: dict[str, Any] = {
    "name": "settings",
    "task": {"modulus": 11},
    "model": {"embedding_dim": 8, "hidden": 16},
    "train": {"epochs": 30, "batch_size": 16, "lr": 1e-2},
    "metrics": {"every": 5},
}
ODD = {"betas": [0.5, 0.9], "eps": 1e-3}  # far from the defaults: the update changes a lot
METRICS = ("train_acc", "test_acc", "train_loss", "test_loss")


def spec_with(**train: Any) -> Spec:
    return validate_spec({**BASE, "train": {**BASE["train"], **train}}, "settings")


def plain_history(spec: Spec) -> dict[str, list[float]]:
    """Train one member the textbook way (tests/reference.py's loop, torch.optim.AdamW):
    grokexp gives only the initial weights, the split and the batch order."""
    return plain_training(spec)[0]


def same_history(a: MemberSeries, b: MemberSeries) -> None:
    """Bitwise on the CPU: the engine's own contract for a member alone and in a population."""
    assert a.epochs == b.epochs
    assert (a.train_grok_epoch, a.test_grok_epoch) == (b.train_grok_epoch, b.test_grok_epoch)
    for name in METRICS:
        assert a.metrics[name] == b.metrics[name], name


def largest_gap(history: MemberSeries, reference: dict[str, list[float]], name: str) -> float:
    assert history.epochs == reference["epochs"]
    return max(abs(x - y) for x, y in zip(history.metrics[name], reference[name], strict=True))


def test_swept_betas_and_eps_reach_their_member_and_match_plain_adamw():
    raw = {**BASE, "sweep": {"train.betas": [[0.9, 0.999], ODD["betas"]],
                             "train.eps": [1e-8, ODD["eps"]]}}
    members = expand_members(validate_spec(raw, "settings"))
    assert len(group_by_shape(members)) == 1  # honoured per member, not by splitting
    odd = next(m for m in members if m.varied == {"train.betas": ODD["betas"],
                                                  "train.eps": ODD["eps"]})
    assert odd.index == 3  # last, so member 0's values are not its own
    together = train_group(members, CPU, []).by_index(odd.index)
    alone = train_group([Member(0, odd.spec, odd.varied)], CPU, []).members[0]
    same_history(together, alone)

    reference = plain_history(odd.spec)
    default = plain_history(spec_with())  # member 0's settings, what the bug trained with
    for name in ("train_loss", "test_loss"):
        gap = largest_gap(together, reference, name)
        assert gap < 1e-5, (name, gap)  # float32 noise: hand-written backward, fused AdamW
        assert largest_gap(together, default, name) > 100 * max(gap, 1e-5)  # would be seen
    for name in ("train_acc", "test_acc"):
        assert largest_gap(together, reference, name) <= 1.0 / 121 + 1e-6  # one pair at most


def test_every_per_member_setting_at_once_with_members_leaving():
    """All PER_MEMBER settings differ between three members of one population; one member
    leaves at the first evaluation; each still trains as it does alone."""
    specs = [
        spec_with(seed=1, split_seed=2, lr=3e-3, weight_decay=0.1, betas=[0.8, 0.99],
                  eps=1e-6),
        validate_spec({**BASE, "train": {**BASE["train"], "stop_after_generalized": 0},
                       "metrics": {**BASE["metrics"], "grok_threshold": 0.01}}, "settings"),
        validate_spec({**BASE, "train": {**BASE["train"], "seed": 4, **ODD},
                       "init": {"scale": 1.5, "embedding": {"trainable": False}}}, "settings"),
    ]
    members = [Member(k, s, {}) for k, s in enumerate(specs)]
    assert len({shape_key(s) for s in specs}) == 1
    together = train_group(members, CPU, [])
    assert together.by_index(1).last_epoch < 30  # left early: the others were reselected
    for member in members:
        alone = train_group([Member(0, member.spec, {})], CPU, []).members[0]
        same_history(together.by_index(member.index), alone)


@pytest.mark.parametrize("key, values", [
    ("train.dropout", [0.0, 0.1]), ("train.batch_size", [8, 16]), ("train.epochs", [10, 20]),
    ("task.train_fraction", [0.4, 0.6]), ("model.activation", ["relu", "gelu"]),
    ("metrics.every", [2, 5]), ("metrics.mc_samples", [2, 3]), ("name", ["a", "b"]),
])
def test_any_other_difference_splits_the_population(key, values):
    members = expand_members(validate_spec({**BASE, "sweep": {key: values}}, "settings"))
    assert key not in PER_MEMBER
    assert len(group_by_shape(members)) == 2


@pytest.mark.parametrize("fused", [True, False])
def test_population_adamw_takes_each_members_betas_and_eps(fused):
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(3, 4, 5, generator=gen)
    settings = [((0.9, 0.999), 1e-8), ((0.5, 0.9), 1e-3), ((0.0, 0.5), 1e-1)]
    w = {"w": start.clone()}
    opt = PopulationAdamW(w, torch.full((3,), 1e-2, dtype=torch.float64),
                          torch.full((3,), 0.5, dtype=torch.float64), {"w": torch.ones(3)},
                          betas=torch.tensor([b for b, _ in settings], dtype=torch.float64),
                          eps=torch.tensor([e for _, e in settings], dtype=torch.float64),
                          fused=fused)
    refs = [start[k].clone().requires_grad_(True) for k in range(3)]
    plain = [torch.optim.AdamW([r], lr=1e-2, weight_decay=0.5, betas=b, eps=e, foreach=False)
             for r, (b, e) in zip(refs, settings, strict=True)]
    for _ in range(6):
        grads = torch.randn(3, 4, 5, generator=gen) * 1e-2
        opt.step({"w": grads})
        for k, (ref, ref_opt) in enumerate(zip(refs, plain, strict=True)):
            ref.grad = grads[k].clone()
            ref_opt.step()
    for k, ref in enumerate(refs):
        torch.testing.assert_close(w["w"][k], ref.detach(), rtol=1e-6, atol=1e-7)
    keep = [2, 0]  # members leave: the settings follow the survivors
    w["w"] = w["w"][keep]  # what Population.retire does to the dict the optimiser holds
    opt.retire(keep)
    assert opt.beta1.tolist() == [0.0, 0.9] and opt.eps.tolist() == [1e-1, 1e-8]
    part = opt.shard(1, 2)
    assert part.beta2.tolist() == [0.999] and part.eps.tolist() == [1e-8]
