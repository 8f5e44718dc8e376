"""MC dropout and the DRC: exact at rate 0, noisy above it, member-aligned when batched."""

from __future__ import annotations

import torch

from grokexp.diagnostics.metrics.dropout import (
    dropout_accuracies,
    dropout_robustness,
    mc_dropout_accuracy,
)
from grokexp.engine.accuracy import accuracy_and_loss
from grokexp.engine.data import make_splits, pair_table
from grokexp.engine.model import Population
from grokexp.spec.io import validate_spec


def _generators(k: int, seed: int = 0) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed + i) for i in range(k)]


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
    reference = accuracy_and_loss(population.logits(table.pairs).detach(),
                                  table.labels, splits.train_mask)["test_acc"]
    mean, var = mc_dropout_accuracy(population.params, population.arch, left, right, labels,
                                    rate=0.0, samples=8, sites=("embedding", "hidden"),
                                    generators=_generators(3))
    assert torch.equal(var, torch.zeros(3))
    torch.testing.assert_close(mean, reference)
    assert len(set(reference.tolist())) > 1  # members differ, so misalignment would show


def test_drc_at_rate_zero_equals_test_accuracy_and_falls_at_high_rates() -> None:
    population, table, splits, (left, right, labels) = _population()
    reference = accuracy_and_loss(population.logits(table.pairs).detach(),
                                  table.labels, splits.train_mask)["test_acc"]
    curve = dropout_robustness(population.params, population.arch, left, right, labels,
                               rates=[0.0, 0.5, 0.9], samples=4, sites=("hidden",),
                               generators=_generators(3))
    assert curve.shape == (3, 3)
    torch.testing.assert_close(curve[:, 0], reference)
    assert not torch.equal(curve[:, 2], curve[:, 0])


def test_dropout_is_random_reproducible_and_chunk_independent(monkeypatch) -> None:
    """A member's passes depend on its generator alone: the chunking and the members beside
    it change nothing, bit for bit (one pass per chunk included, where a view of the shared
    input used to be masked in place, compounding the passes)."""
    population, _, _, (left, right, labels) = _population(2)
    rates = torch.full((40,), 0.5)
    import grokexp.diagnostics.metrics.dropout as module

    def run(members: list[int], sites=("embedding", "hidden")) -> torch.Tensor:
        keep = torch.tensor(members)
        params = {n: t.detach()[keep] for n, t in population.params.items()}
        return dropout_accuracies(params, population.arch, left[keep], right[keep],
                                  labels[keep], rates, sites,
                                  [torch.Generator().manual_seed(7 + m) for m in members])

    first = run([0, 1])
    assert torch.equal(first, run([0, 1]))
    assert float(first.var(1).min()) > 0  # dropout at 0.5 moves the answers
    for floats in (1, 3 * 2 * left.shape[1] * 12, 10**9):  # 1 pass, 3 (short last), all
        monkeypatch.setattr(module, "CHUNK_FLOATS", floats)
        assert torch.equal(run([0, 1]), first)
        assert torch.equal(run([1])[0], first[1]) and torch.equal(run([0])[0], first[0])
        hidden_only = run([0, 1], ("hidden",))
        assert torch.equal(hidden_only, run([0, 1], ("hidden",)))
    assert not torch.equal(hidden_only, first)


def test_keep_mask_hits_the_rate_and_survivors_keep_the_expected_value() -> None:
    from grokexp.diagnostics.metrics.dropout import QUANTUM, keep_mask

    gen = torch.Generator().manual_seed(3)
    for rate in (0.0, 0.1, 0.3, 0.9):
        kept = keep_mask((500, 200), rate, gen)  # 100k units
        # binomial: sd of the dropped share is sqrt(p(1-p)/1e5) <= 0.0016; 4 sd
        assert abs(float((~kept).float().mean()) - rate) <= 4 * (rate * (1 - rate) / 1e5) ** 0.5
        if rate == 0.0:
            assert bool(kept.all())
    # the survivor scale uses the same quantised rate, so the expectation stays exact
    from grokexp.diagnostics.metrics.dropout import _survivor_scale
    scale = float(_survivor_scale(torch.tensor([0.3]))[0])
    expected = QUANTUM / (QUANTUM - round(0.3 * QUANTUM))
    assert scale == float(torch.tensor(expected, dtype=torch.float32))  # float32 of it
