"""Every diagnostic against the independent reference in ``tests/reference.py``.

A population of five seeds of a small modulus trains until most of them generalise (a few
seconds); the diagnostics hook measures them at the last epoch as it does in any run. Each
member's weights then go into the plain ``nn.Module`` of ``reference.py`` and every logged
value is checked against what that module and numpy give:

- deterministic values (cosine matrix and its codiagonal share, bimodality, peaks, layer
  statistics, inactive units, the DRC at rate 0) to float32 rounding;
- random values (MC-dropout mean and variance, the DRC above rate 0) within 4 standard
  errors of the difference of two independent estimates, the errors estimated from the
  passes themselves: a false failure then has a chance below 1e-4 per comparison.

The same measurements are redone on populations of 1, 2 and 5 members and at chunk sizes of
one pass, seven passes (a short last chunk) and all passes: each member's values must be
bitwise those logged in the population of five.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from reference import (
    PaperMLP,
    accuracy,
    codiagonal_share,
    cosine_matrix,
    histogram_peaks,
    mc_dropout_passes,
    sarle_bimodality,
    sparsity,
)

import grokexp.diagnostics.metrics.dropout as dropout
from grokexp.diagnostics.hook import DiagnosticsHook, cadence_metrics
from grokexp.diagnostics.probes import drc_key, drc_probe, frozen_params, mc_probe
from grokexp.engine.data import make_splits, pair_table
from grokexp.engine.model import Population
from grokexp.engine.sweep import expand_members
from grokexp.engine.train import TrainData, train
from grokexp.spec.io import validate_spec

EPOCHS, PASSES, DRC_PASSES = 400, 300, 100
RATES = [0.0, 0.1, 0.3, 0.5, 0.9]
SITES = ("embedding", "hidden")
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def _spec(embedding_activation: str):
    return validate_spec({
        "name": "ref", "task": {"modulus": 23, "train_fraction": 0.6},
        "model": {"embedding_dim": 32, "hidden": 64,
                  "embedding_activation": embedding_activation},
        "train": {"epochs": EPOCHS, "batch_size": 32, "lr": 1e-2},
        "metrics": {"every": 50, "mc_dropout_every": EPOCHS, "mc_samples": PASSES,
                    "mc_rate": 0.3, "drc_epochs": [EPOCHS], "drc_rates": RATES,
                    "drc_samples": DRC_PASSES, "heatmap_epochs": [EPOCHS],
                    "histogram_epochs": [EPOCHS], "checkpoints": 0},
        "sweep": {"seeds": [0, 1, 2, 3, 4]}}, "ref")


@pytest.fixture(scope="module", params=["none", "relu"])
def trained(request):
    """Five members trained as one population, the hook's records, and the data."""
    spec = _spec(request.param)
    members = expand_members(spec)
    table = pair_table(spec.task)
    splits = make_splits(spec.task, table, [m.spec.train.split_seed for m in members])
    population = Population.from_specs([m.spec for m in members], torch.device("cpu"))
    hook = DiagnosticsHook()
    data = TrainData(table, splits)
    history = train(population, members, data, [hook])
    hook.finish()  # every probe in, the probe process stopped
    return {"members": members, "records": [hook.records[m.index] for m in members],
            "history": history, "data": data, "population": population,
            "relu": request.param == "relu", "spec": spec}


def _at(record, name: str) -> float:
    epochs, values = record.series.columns[name]
    return values[epochs.index(EPOCHS)]


def _reference(trained, k: int) -> tuple[PaperMLP, torch.Tensor, torch.Tensor, torch.Tensor]:
    state = {n: torch.as_tensor(v) for n, v in trained["records"][k].final.items()}
    model = PaperMLP.from_state(state, embedding_relu=trained["relu"])
    table, splits = trained["data"].table, trained["data"].splits
    test, tr = splits.test_index[k], splits.train_index[k]
    return model, table.left[test], table.right[test], torch.stack(
        [table.left[tr], table.right[tr]])


def _close_in_mean(a: np.ndarray | float, var_a: float, n_a: int, b: np.ndarray | float,
                   var_b: float, n_b: int) -> bool:
    """|mean_a − mean_b| within 4 standard errors of the difference (plus float slack)."""
    bound = 4.0 * math.sqrt(var_a / n_a + var_b / n_b) + 1e-9
    return abs(float(np.mean(a)) - float(np.mean(b))) <= bound


def _se_of_variance(samples: np.ndarray) -> float:
    """Standard error of the unbiased sample variance, √((m₄ − s⁴)/n), from the samples."""
    c = samples - samples.mean()
    return math.sqrt(max(float((c**4).mean() - (c**2).mean() ** 2), 0.0) / samples.size)


def test_the_population_spans_memorising_to_generalised(trained) -> None:
    """The checks below mean something only if dropout changes the answers (and, with a
    ReLU after the embedding, only if the ReLU changes what the next layer sees; that
    network groks much later, as the paper says, so it is still memorising here)."""
    variances = [_at(r, "mc_dropout_acc_var") for r in trained["records"]]
    tests = [_at(r, "test_acc") for r in trained["records"]]
    assert max(variances) > 5e-5
    if trained["relu"]:
        raw = trained["records"][0].final["embedding"]
        assert (raw < 0).mean() > 0.2 and (trained["records"][0].embedding_values[EPOCHS]
                                           == np.maximum(raw, 0).flatten()).all()
    else:
        assert max(tests) > 0.9 and min(tests) < 0.9


def test_mc_dropout_mean_and_variance_agree_with_plain_dropout(trained) -> None:
    for k, record in enumerate(trained["records"]):
        model, i, j, _ = _reference(trained, k)
        ref = mc_dropout_passes(model, i, j, 0.3, PASSES, SITES, seed=100 + k)
        mean, var = _at(record, "mc_dropout_acc_mean"), _at(record, "mc_dropout_acc_var")
        ref_var = float(ref.var(ddof=1))
        assert _close_in_mean(mean, var, PASSES, ref, ref_var, PASSES), (k, mean, ref.mean())
        # the sample variance's own standard error, from the reference passes (kurtosis
        # included); grokexp's variance has the same distribution, so √2 of it for both
        se = _se_of_variance(ref)
        assert abs(var - ref_var) <= 4.0 * math.sqrt(2.0) * se + 1e-9, (k, var, ref_var)


def test_drc_agrees_with_plain_dropout_at_every_rate(trained) -> None:
    for k, record in enumerate(trained["records"]):
        model, i, j, _ = _reference(trained, k)
        curve = record.drc[EPOCHS]
        assert curve[0] == pytest.approx(accuracy(model, i, j), abs=1e-6)  # rate 0: exact
        assert _at(record, "test_acc") == pytest.approx(curve[0], abs=1e-6)
        for r, rate in enumerate(RATES[1:], start=1):
            ref = mc_dropout_passes(model, i, j, rate, DRC_PASSES, SITES, seed=200 + 10 * k + r)
            # grokexp logs only the mean; its passes have the reference's spread
            spread = float(ref.var(ddof=1))
            assert _close_in_mean(curve[r], spread, DRC_PASSES, ref, spread, DRC_PASSES), (
                k, rate, curve[r], ref.mean())


def test_deterministic_diagnostics_agree_with_numpy(trained) -> None:
    population = trained["population"]
    names = list(population.params)
    for k, record in enumerate(trained["records"]):
        model, i, j, train_pairs = _reference(trained, k)
        seen = model.embed(torch.arange(23)).detach().numpy()  # what the first layer reads
        cos = cosine_matrix(seen)
        # float32 products of unit vectors of length 32: rounding well below 1e-5
        np.testing.assert_allclose(record.cosine[EPOCHS], cos, atol=1e-5)
        assert _at(record, "embedding_cos_structure") == pytest.approx(
            codiagonal_share(cos), abs=1e-4)
        values = seen.flatten()
        assert _at(record, "embedding_bimodality") == pytest.approx(
            sarle_bimodality(values), rel=1e-4)
        low, high, width = histogram_peaks(values)
        # a value on a bin edge may fall either side in float32: one bin at most
        assert abs(_at(record, "embedding_peak_low") - low) <= width * 1.001
        assert abs(_at(record, "embedding_peak_high") - high) <= width * 1.001
        np.testing.assert_array_equal(record.embedding_values[EPOCHS], values)
        for name in names:
            raw = record.final[name].astype(np.float64).flatten()
            prefix = name.replace("hidden.0.", "hidden.").replace(".", "_")
            assert _at(record, f"{prefix}_mean") == pytest.approx(raw.mean(), abs=1e-6)
            assert _at(record, f"{prefix}_std") == pytest.approx(raw.std(), rel=1e-5)
        dead, zeros = sparsity(model, train_pairs[0], train_pairs[1])
        assert _at(record, "inactive_neurons_pct") == pytest.approx(dead, abs=1e-9)
        # a unit whose pre-activation rounds to 0 in one summation order may not in the
        # other: a few cells in N·H at most
        assert _at(record, "zero_activation_frac") == pytest.approx(zeros, abs=1e-4)


def _measure(trained, positions: list[int], device: str) -> dict[str, list[float]]:
    """The probes and the per-evaluation diagnostics of some members, as the hook runs them."""
    members = [trained["members"][p] for p in positions]
    keep = torch.tensor(positions)
    population = trained["population"]
    params = {n: t.detach()[keep].to(device) for n, t in population.params.items()}
    pop = Population(population.arch, params)
    data = trained["data"]
    data = TrainData(type(data.table)(data.table.modulus, data.table.left.to(device),
                                      data.table.right.to(device), data.table.labels.to(device)),
                     data.splits.select(keep).to(device))
    cfg = trained["spec"].metrics
    frozen = frozen_params(pop)
    out: dict[str, torch.Tensor] = {}
    out.update(mc_probe(frozen, pop.arch, data, cfg, members, EPOCHS)())
    out.update(drc_probe(frozen, pop.arch, data, cfg, members, EPOCHS)())
    out.update(cadence_metrics(frozen, pop.arch, data, cfg))
    return {name: v.cpu().tolist() for name, v in out.items()}


@pytest.mark.parametrize("chunk", ["one pass", "seven passes", "all passes"])
def test_every_member_measures_the_same_alone_and_in_any_population(trained, chunk,
                                                                    monkeypatch) -> None:
    n, widest = int(trained["data"].splits.test_index.shape[1]), 64
    for positions in ([3], [4, 1], [0, 1, 2, 3, 4]):
        k = len(positions)
        floats = {"one pass": 1, "seven passes": 7 * k * n * widest,
                  "all passes": 10**9}[chunk]
        monkeypatch.setattr(dropout, "CHUNK_FLOATS", floats)
        measured = _measure(trained, positions, "cpu")
        for pos, member_pos in enumerate(positions):
            record = trained["records"][member_pos]
            for name, values in measured.items():
                logged = (record.drc[EPOCHS][RATES.index(float(name[len("drc_acc_r"):]))]
                          if name.startswith("drc_acc_r") else _at(record, name))
                assert values[pos] == logged, (chunk, positions, name)
    assert drc_key(0.5) == "drc_acc_r0.5"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("chunk", ["one pass", "seven passes", "all passes"])
def test_probes_at_every_chunk_size_and_device_agree_with_the_reference(
        trained, chunk, device, monkeypatch) -> None:
    n, k = int(trained["data"].splits.test_index.shape[1]), 5
    floats = {"one pass": 1, "seven passes": 7 * k * n * 64, "all passes": 10**9}[chunk]
    monkeypatch.setattr(dropout, "CHUNK_FLOATS", floats)
    measured = _measure(trained, list(range(k)), device)
    for m in range(k):
        model, i, j, _ = _reference(trained, m)
        ref = mc_dropout_passes(model, i, j, 0.3, PASSES, SITES, seed=300 + m)
        mean, var = measured["mc_dropout_acc_mean"][m], measured["mc_dropout_acc_var"][m]
        ref_var = float(ref.var(ddof=1))
        assert _close_in_mean(mean, var, PASSES, ref, ref_var, PASSES), (m, mean, ref.mean())
        assert abs(var - ref_var) <= 4.0 * math.sqrt(2.0) * _se_of_variance(ref) + 1e-9
