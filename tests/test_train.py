from __future__ import annotations

import pytest
import torch

from grokexp.runner import train_group
from grokexp.spec_io import load_spec
from grokexp.sweep import expand_members
from grokexp.train import EvalContext, Hook

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
    from grokexp.init import init_member
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
