from __future__ import annotations

import pytest
import torch

from grokexp.engine.sweep import expand_members
from grokexp.engine.train import EvalContext, Hook
from grokexp.run.runner import train_group
from grokexp.spec.io import load_spec

BASE = """
name = "t"
[task]
modulus = 11
[model]
embedding_dim = 16
hidden = 24
[train]
epochs = 40
lr = 1e-2
batch_size = 16
[metrics]
every = 5
"""
CPU = torch.device("cpu")


def members(extra: str = "", overrides=()):
    return expand_members(load_spec(BASE + extra, "t.toml", overrides))


def test_member_of_a_population_matches_the_member_alone():
    grid = members('[sweep]\nseeds = [0, 1, 2]\n"train.weight_decay" = [0.1, 1.0]\n'
                   '"train.split_seed" = [0, 5]\n"init.scale" = [1.0, 2.0]')
    together = train_group(grid, CPU, [])
    assert len(together.members) == 24
    for member in grid[::5]:
        alone = train_group([member], CPU, []).members[0]
        joint = together.by_index(member.index)
        assert alone.epochs == joint.epochs
        assert alone.test_grok_epoch == joint.test_grok_epoch
        for name in ("train_acc", "test_acc", "train_loss", "test_loss"):
            # batched matmuls may sum in another order: agree to float32 noise
            torch.testing.assert_close(torch.tensor(joint.metrics[name]),
                                       torch.tensor(alone.metrics[name]),
                                       rtol=1e-3, atol=2e-3)


def test_same_spec_and_seeds_give_identical_history():
    a = train_group(members("[sweep]\nseeds = [0, 1]"), CPU, [])
    b = train_group(members("[sweep]\nseeds = [0, 1]"), CPU, [])
    assert [m.metrics for m in a.members] == [m.metrics for m in b.members]
    c = train_group(members("[sweep]\nseeds = [2, 3]"), CPU, [])
    assert [m.metrics for m in a.members] != [m.metrics for m in c.members]


def test_generalised_members_leave_after_the_hold():
    grid = members(overrides=["train.epochs=100", "train.stop_after_generalized=10",
                              "task.modulus=7", "task.train_fraction=0.9",
                              "metrics.grok_threshold=0.1"])
    history = train_group(grid, CPU, []).members[0]
    assert history.test_grok_epoch is not None
    assert history.last_epoch == history.test_grok_epoch + 10 < 100
    assert history.status == "FINISHED"


def test_frozen_embedding_keeps_its_initial_values():
    grid = members("[init.embedding]\ntrainable = false")
    seen = {}

    class Capture(Hook):
        def on_member_end(self, member, history, state):
            seen["embedding"] = state["embedding"]
            seen["output"] = state["output.weight"]

    train_group(grid, CPU, [Capture()])
    from grokexp.engine.init import init_member
    start = init_member(grid[0].spec)
    assert torch.equal(seen["embedding"], start["embedding"])
    assert not torch.equal(seen["output"], start["output.weight"])


def test_diverging_member_fails_and_others_go_on():
    grid = members('[sweep]\n"init.scale" = [1.0, 1e30]')
    history = train_group(grid, CPU, [])
    ok, bad = history.members
    assert bad.status == "FAILED" and "loss" in bad.reason and bad.last_epoch == 0
    assert ok.status == "FINISHED" and ok.last_epoch == 40


def test_hooks_can_prune_and_add_metrics():
    grid = members("[sweep]\nseeds = [0, 1]")

    class Prune(Hook):
        def metrics(self, ctx: EvalContext):
            return {"double_acc": torch.tensor(
                [2 * v for v in range(len(ctx.members))], dtype=torch.float32)}

        def on_evaluation(self, ctx, values):
            if ctx.epoch == 10:
                ctx.request_stop(grid[1].index, "PRUNED", "test")

    history = train_group(grid, CPU, [Prune()])
    assert history.members[1].status == "PRUNED" and history.members[1].last_epoch == 10
    assert history.members[0].last_epoch == 40
    assert "double_acc" in history.members[0].metrics


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_training_dropout_runs_and_is_seeded(dropout):
    grid = members(overrides=[f"train.dropout={dropout}", "train.epochs=10"])
    a = train_group(grid, CPU, []).members[0].metrics
    b = train_group(grid, CPU, []).members[0].metrics
    assert a == b


# ---- training dropout acts (train.dropout is not ignored)


def _recording_masks(monkeypatch, drawn: list[tuple[str, torch.Tensor]]):
    """Spy on grokexp's own mask factory: the real masks, kept as they are handed out."""
    import grokexp.engine.train as train_module

    real = train_module._dropout_masks

    def spy(rate, generators, device):
        masks = real(rate, generators, device)

        def record(site, shape):
            mask = masks(site, shape)
            drawn.append((site, mask.clone()))
            return mask
        return record

    monkeypatch.setattr(train_module, "_dropout_masks", spy)


def _binomial_bound(p: float, n: int) -> float:
    """5 standard deviations of the share of n independent draws that come up with chance p."""
    return 5 * (p * (1 - p) / n) ** 0.5


def test_training_dropout_draws_masks_at_its_rate_and_changes_the_history(monkeypatch):
    grid = members(overrides=["train.epochs=10"])
    clean = train_group(grid, CPU, []).members[0].metrics
    drawn: list[tuple[str, torch.Tensor]] = []
    _recording_masks(monkeypatch, drawn)
    assert train_group(grid, CPU, []).members[0].metrics == clean  # p = 0 draws no mask
    assert drawn == []
    p = 0.3
    dropped = train_group(members(overrides=["train.epochs=10", f"train.dropout={p}"]), CPU,
                          []).members[0].metrics
    assert dropped["train_loss"] != clean["train_loss"]
    assert dropped["test_acc"] != clean["test_acc"] or dropped["test_loss"] != clean["test_loss"]
    # every minibatch of every epoch: one mask at each site, shaped as the layer it drops
    n_train = round(0.5 * 11 * 11)  # train_fraction 0.5 of the 121 pairs, batches of 16
    batches = 10 * -(-n_train // 16)
    sites = [site for site, _ in drawn]
    assert sites == ["embedding", "hidden"] * batches
    assert {tuple(m.shape[::2]) for s, m in drawn if s == "embedding"} == {(1, 2 * 16)}
    assert {tuple(m.shape[::2]) for s, m in drawn if s == "hidden"} == {(1, 24)}
    values = torch.cat([m.flatten() for _, m in drawn])
    kept = 1 / (1 - p)  # inverted dropout: kept units scaled by 1/(1-p)
    assert torch.all((values == 0) | torch.isclose(values, torch.tensor(kept)))
    share = (values == 0).double().mean().item()
    assert abs(share - p) < _binomial_bound(p, values.numel()), share


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_masks_zero_a_share_p_and_each_member_its_own(p):
    from grokexp.engine.train import _dropout_masks

    generators = [torch.Generator().manual_seed(s) for s in (0, 1)]
    mask = _dropout_masks(p, generators, CPU)("hidden", (2, 400, 50))
    assert mask.shape == (2, 400, 50)
    assert not torch.equal(mask[0], mask[1])
    assert torch.all((mask == 0) | torch.isclose(mask, torch.tensor(1 / (1 - p))))
    for member in mask:
        share = (member == 0).double().mean().item()
        assert abs(share - p) < _binomial_bound(p, member.numel()), (p, share)


def _plain_loss(params: dict[str, torch.Tensor], left, right, labels, emb_mask, hidden_mask):
    """The paper's network written out (one member, one hidden layer), with given masks:
    concatenated embeddings, dropout, ReLU layer, dropout, linear output; mean cross-entropy."""
    emb = params["embedding"]
    x = torch.cat([emb[left], emb[right]], dim=1) * emb_mask
    h = torch.relu(x @ params["hidden.0.weight"] + params["hidden.0.bias"]) * hidden_mask
    out = h @ params["output.weight"] + params["output.bias"]
    return torch.nn.functional.cross_entropy(out, labels)


def test_one_dropout_step_equals_a_plain_autograd_step_with_the_same_masks():
    from grokexp.engine.model import Population
    from grokexp.engine.optim import PopulationAdamW
    from grokexp.engine.step import TrainStep
    from grokexp.engine.train import _dropout_masks

    grid = members('[sweep]\nseeds = [0, 1]', ["train.dropout=0.5"])
    population = Population.from_specs([m.spec for m in grid], CPU)
    params = population.params
    start = {n: t.detach().clone() for n, t in params.items()}
    g = torch.Generator().manual_seed(3)
    left = torch.randint(0, 11, (2, 16), generator=g)
    right = torch.randint(0, 11, (2, 16), generator=g)
    labels = (left + right) % 11  # a + b mod P
    step = TrainStep(population.arch, params, 16)
    (batch,) = step.plan(left, right, labels)
    real = _dropout_masks(0.5, [torch.Generator().manual_seed(s) for s in (5, 6)], CPU)
    drawn: dict[str, torch.Tensor] = {}

    def masks(site, shape):
        drawn[site] = real(site, shape)
        return drawn[site]

    step.step(params, batch, masks)
    assert drawn["embedding"].shape == (2, 16, 32) and drawn["hidden"].shape == (2, 16, 24)
    lr, wd = 1e-2, 1.0
    optimizer = PopulationAdamW(params, torch.full((2,), lr, dtype=torch.float64),
                                torch.full((2,), wd, dtype=torch.float64),
                                {n: torch.ones(2) for n in params})
    optimizer.step(step.grads)
    for k in range(2):
        leaves = {n: t[k].clone().requires_grad_(True) for n, t in start.items()}
        _plain_loss(leaves, left[k], right[k], labels[k], drawn["embedding"][k],
                    drawn["hidden"][k]).backward()
        for name, leaf in leaves.items():
            # float32 sums of 16 pairs in another order: a few ulps of the gradient's size
            torch.testing.assert_close(step.grads[name][k], leaf.grad, rtol=1e-5, atol=1e-6)
        reference = torch.optim.AdamW(list(leaves.values()), lr=lr, weight_decay=wd)
        reference.step()
        for name, leaf in leaves.items():
            torch.testing.assert_close(params[name][k].detach(), leaf.detach(),
                                       rtol=1e-5, atol=1e-6)
    # without dropout the same step gives other gradients: the masks did act
    clean = TrainStep(population.arch, start, 16)
    clean.step(start, clean.plan(left, right, labels)[0])
    assert not torch.allclose(clean.grads["output.weight"], step.grads["output.weight"])


def test_dropout_at_half_raises_the_training_loss_of_a_trained_model():
    from grokexp.engine.arch.mlp import MlpArch as Architecture
    from grokexp.engine.arch.mlp import logits
    from grokexp.engine.data import make_splits, pair_table
    from grokexp.engine.train import _dropout_masks

    grid = members(overrides=["train.epochs=60"])
    seen = {}

    class Capture(Hook):
        def on_member_end(self, member, history, state):
            seen.update(state)

    train_group(grid, CPU, [Capture()])
    spec = grid[0].spec
    params = {n: t[None] for n, t in seen.items()}  # a population of one
    arch = Architecture.from_spec(spec)
    table = pair_table(spec.task)
    rows = make_splits(spec.task, table, [spec.train.split_seed]).train_index[0]
    left, right, labels = table.left[rows], table.right[rows], table.labels[rows]

    def loss(masks=None) -> float:
        out = logits(params, arch, left, right, masks)[0]
        return torch.nn.functional.cross_entropy(out, labels).item()

    with torch.no_grad():
        clean = loss()
        draws = torch.tensor([loss(_dropout_masks(0.5, [torch.Generator().manual_seed(s)], CPU))
                              for s in range(40)])
    # the mean over 40 draws sits more than 5 of its standard errors above the clean loss
    assert draws.mean().item() - clean > 5 * draws.std().item() / 40**0.5, (clean, draws)
