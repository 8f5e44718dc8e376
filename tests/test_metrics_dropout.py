"""MC dropout and the DRC: exact at rate 0, noisy above it, member-aligned when batched."""

from __future__ import annotations

import torch

from grokexp.data import make_splits, pair_table
from grokexp.metrics.accuracy import accuracy_and_loss
from grokexp.metrics.dropout import dropout_accuracies, dropout_robustness, mc_dropout_accuracy
from grokexp.model import Population
from grokexp.spec_io import validate_spec


def _population(k: int = 3):
    specs = [validate_spec({"name": "t", "task": {"modulus": 7},
                            "model": {"embedding_dim": 6, "hidden": 12},
                            "train": {"seed": s, "split_seed": s}}, "t") for s in range(k)]
    table = pair_table(specs[0].task)
    splits = make_splits(specs[0].task, table, [s.train.split_seed for s in specs])
    population = Population.from_specs(specs, torch.device("cpu"))
    # scale the output so accuracies differ clearly between members
    population.params["output.weight"] = population.params["output.weight"] * 5
    ti = splits.test_index  # (K, N_test)
    return population, table, splits, (table.left[ti], table.right[ti], table.labels[ti])


def test_mc_dropout_at_rate_zero_is_the_test_accuracy_with_no_variance() -> None:
    population, table, splits, (left, right, labels) = _population()
    reference = accuracy_and_loss(population.logits(table.left, table.right).detach(),
                                  table.labels, splits.train_mask)["test_acc"]
    mean, var = mc_dropout_accuracy(population.params, population.arch, left, right, labels,
                                    rate=0.0, samples=8, sites=("embedding", "hidden"),
                                    generator=torch.Generator().manual_seed(0))
    assert torch.equal(var, torch.zeros(3))
    torch.testing.assert_close(mean, reference)
    assert len(set(reference.tolist())) > 1  # members differ, so misalignment would show


def test_drc_at_rate_zero_equals_test_accuracy_and_falls_at_high_rates() -> None:
    population, table, splits, (left, right, labels) = _population()
    reference = accuracy_and_loss(population.logits(table.left, table.right).detach(),
                                  table.labels, splits.train_mask)["test_acc"]
    curve = dropout_robustness(population.params, population.arch, left, right, labels,
                               rates=[0.0, 0.5, 0.9], samples=4, sites=("hidden",),
                               generator=torch.Generator().manual_seed(0))
    assert curve.shape == (3, 3)
    torch.testing.assert_close(curve[:, 0], reference)
    assert not torch.equal(curve[:, 2], curve[:, 0])


def test_dropout_is_random_reproducible_and_chunk_independent(monkeypatch) -> None:
    population, _, _, (left, right, labels) = _population(2)
    rates = torch.full((40,), 0.5)

    def run() -> torch.Tensor:
        return dropout_accuracies(population.params, population.arch, left, right, labels,
                                  rates, ("embedding", "hidden"),
                                  torch.Generator().manual_seed(7))

    first, again = run(), run()
    assert torch.equal(first, again)
    assert float(first.var(1).min()) > 0  # dropout at 0.5 moves the answers
    import grokexp.metrics.dropout as module

    monkeypatch.setattr(module, "CHUNK_FLOATS", 1)  # one copy per chunk
    chunked = run()
    assert chunked.shape == first.shape
    # different chunking draws different masks; the means must agree statistically
    assert float((chunked.mean(1) - first.mean(1)).abs().max()) < 0.15


def test_drop_hits_each_copy_rate_and_keeps_the_expected_value() -> None:
    from grokexp.metrics.dropout import QUANTUM, _drop_

    rates = torch.tensor([0.0, 0.1, 0.3, 0.9])
    x = torch.ones(2, 4, 500, 100)  # (K, c, N, F): 100k units per (member, copy)
    _drop_(x, rates, torch.Generator().manual_seed(3))
    dropped = (x == 0).float().mean((0, 2, 3))  # (c,)
    torch.testing.assert_close(dropped, rates, atol=0.005, rtol=0)
    assert float(dropped[0]) == 0.0
    kept = x[:, 2][x[:, 2] > 0]
    assert torch.allclose(kept, torch.tensor(QUANTUM / (QUANTUM - round(0.3 * QUANTUM))))
    torch.testing.assert_close(x.mean((0, 2, 3)), torch.ones(4), atol=0.02, rtol=0)
