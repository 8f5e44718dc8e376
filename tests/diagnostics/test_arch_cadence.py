"""The per-evaluation diagnostics and the hook's snapshots on every architecture.

The cosine structure, Fourier share, bimodality and peaks are those of the architecture's
token embedding (the transformer's token rows without "="; for the one-hot MLP the first
layer's two (P, H) blocks side by side), checked against numpy on the embedding the plain
reference (``arch_cases.py``) holds; the layer statistics are named after the parameters
('.' → '_'); inactive units are counted on the reference's activations. A diagnostic that
cannot apply is said once in the log and not logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import torch
from arch_cases import CASES, P, member
from reference import codiagonal_share, cosine_matrix, histogram_peaks, sarle_bimodality

from grokexp.diagnostics.hook import DiagnosticsHook
from grokexp.diagnostics.probes import cadence_metrics, frozen_params, not_measured
from grokexp.engine.arch.onehot_mlp import OneHotMlpArch
from grokexp.engine.data import make_splits, pair_table
from grokexp.engine.model import Population
from grokexp.engine.sweep import expand_members
from grokexp.engine.train import TrainData, train
from grokexp.figures.sets import run_figures
from grokexp.spec.io import validate_spec

MODELS: dict[str, dict[str, Any]] = {  # the sizes of arch_cases.py
    "transformer": {"architecture": "transformer", "d_model": 16, "n_heads": 2, "d_mlp": 24},
    "transformer_2_layers_ln": {"architecture": "transformer", "d_model": 16, "n_heads": 2,
                                "d_mlp": 24, "n_layers": 2, "layer_norm": True},
    "onehot_mlp": {"architecture": "onehot_mlp", "hidden": [16, 12]},
}


def _setup(model: Mapping, seeds: list[int], metrics: Mapping | None = None,
           epochs: int = 10):
    spec = validate_spec({"name": "a", "task": {"modulus": P, "train_fraction": 0.6},
                          "model": dict(model),
                          "train": {"epochs": epochs, "batch_size": 8, "lr": 1e-2},
                          "metrics": {"every": 5, **(metrics or {})},
                          "sweep": {"seeds": seeds}}, "a")
    members = expand_members(spec)
    table = pair_table(spec.task)
    splits = make_splits(spec.task, table, [m.spec.train.split_seed for m in members])
    population = Population.from_specs([m.spec for m in members], torch.device("cpu"))
    return spec, members, population, TrainData(table, splits)


def _fourier_share(table: np.ndarray, top: int = 5) -> float:
    """rfft along the tokens; each 0 < f < P/2 stands for f and P − f (P odd here)."""
    power = (np.abs(np.fft.rfft(table, axis=0)) ** 2).sum(1)[1:] * 2.0
    return float(np.sort(power)[::-1][:top].sum() / power.sum())


@pytest.mark.parametrize("name", list(MODELS))
def test_cadence_metrics_against_numpy_in_populations_of_1_2_and_5(name) -> None:
    case = CASES[name]()
    spec, _, population, data = _setup(MODELS[name], [0, 1, 2, 3, 4])
    params = frozen_params(population)
    params[next(p.name for p in population.arch.layout() if p.is_bias
                and (p.name.startswith("hidden.") or p.name.endswith("mlp.b_in")))][:, :2] = -50.0
    out = {n: v.numpy() for n, v in cadence_metrics(params, population.arch, data,
                                                     spec.metrics).items()}
    table, tr = data.table, data.splits.train_index
    for m in range(5):
        state = member(params, m)
        emb = case.embedding(state).numpy()
        cos = cosine_matrix(emb)
        assert out["embedding_cos_structure"][m] == pytest.approx(codiagonal_share(cos),
                                                                  abs=1e-4)  # float32 cos
        assert out["embedding_fourier_share"][m] == pytest.approx(_fourier_share(emb), rel=1e-5)
        values = emb.flatten()
        assert out["embedding_bimodality"][m] == pytest.approx(sarle_bimodality(values),
                                                               rel=1e-4)
        low, high, width = histogram_peaks(values)
        # a value on a bin edge may fall either side in float32: one bin at most
        assert abs(out["embedding_peak_low"][m] - low) <= width * 1.001
        assert abs(out["embedding_peak_high"][m] - high) <= width * 1.001
        for pname, tensor in state.items():
            raw = tensor.double().flatten().numpy()
            key = pname.replace(".", "_")  # e.g. blocks_0_attn_w_q_mean
            assert out[f"{key}_mean"][m] == pytest.approx(raw.mean(), abs=1e-6)
            assert out[f"{key}_std"][m] == pytest.approx(raw.std(), rel=1e-5, abs=1e-7)
        norm = np.sqrt(sum((t.double() ** 2).sum().item() for t in state.values()))
        assert out["weight_norm"][m] == pytest.approx(norm, rel=1e-6)
        with torch.no_grad():
            _, acts = case.reference(state)(torch.stack([table.left[tr[m]],
                                                         table.right[tr[m]]], 1), None)
        layers = [a.numpy().reshape(-1, a.shape[-1]) for a in acts]
        dead = 100.0 * sum(int((a == 0).all(0).sum()) for a in layers) / sum(
            a.shape[1] for a in layers)
        assert dead >= 100.0 * 2 / sum(a.shape[1] for a in layers)  # the units pushed dead
        assert out["inactive_neurons_pct"][m] == pytest.approx(dead, abs=1e-9)
    for positions in ([3], [4, 1]):  # each member's values are its own
        keep = torch.tensor(positions)
        part = cadence_metrics({n: t[keep] for n, t in params.items()}, population.arch,
                               TrainData(table, data.splits.select(keep)), spec.metrics)
        for key, got in part.items():
            np.testing.assert_array_equal(got.numpy(), out[key][positions], err_msg=key)


class _NoTokenEmbedding(OneHotMlpArch):
    """An architecture without a token embedding, as the protocol allows (None)."""

    def token_embedding(  # type: ignore[override]  # the protocol's None
            self, params: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        return None


def test_without_a_token_embedding_or_a_relu_nothing_is_measured_and_it_is_said() -> None:
    spec, _, population, data = _setup(MODELS["onehot_mlp"], [0, 1])
    params = frozen_params(population)
    arch = _NoTokenEmbedding(P, (16, 12), "tanh")
    out = cadence_metrics(params, arch, data, spec.metrics)
    assert "weight_norm" in out and "hidden_0_weight_mean" in out
    assert not {"embedding_cos_structure", "embedding_fourier_share", "embedding_bimodality",
                "embedding_peak_low", "inactive_neurons_pct", "zero_activation_frac"} & set(out)
    said = not_measured(params, arch, spec.metrics)
    assert len(said) == 2 and "token embedding" in said[0] and "inactive" in said[1]
    assert not_measured(params, population.arch, spec.metrics) == []


def test_the_hook_says_once_what_it_cannot_measure_and_snapshots_the_token_embedding(
        caplog) -> None:
    """A gelu transformer has no ReLU: no inactive count, one warning over every evaluation;
    its cosine heatmap and embedding histogram come from its token rows, its dropout probes
    from its sites."""
    model = {**MODELS["transformer"], "activation": "gelu"}
    metrics = {"mc_dropout_every": 5, "mc_samples": 4, "drc_epochs": [10], "drc_samples": 2,
               "heatmap_epochs": [0], "histogram_epochs": [0], "checkpoints": 0}
    _, members, population, data = _setup(model, [0, 1], metrics)
    initial = population.params["embedding"].detach()[:, :P].clone().numpy()
    hook = DiagnosticsHook(background_probes=False)
    with caplog.at_level(logging.WARNING, logger="grokexp.diagnostics.hook"):
        train(population, members, data, [hook])
        hook.finish()
    said = [r for r in caplog.records if "inactive neurons" in r.getMessage()]
    assert len(said) == 1 and "transformer" in said[0].getMessage()
    for k, m in enumerate(members):
        record = hook.records[m.index]
        columns = record.series.columns
        assert "inactive_neurons_pct" not in columns and "zero_activation_frac" not in columns
        assert {"embedding_cos_structure", "mc_dropout_acc_var", "blocks_0_attn_w_q_mean",
                "unembed_weight_std"} <= set(columns)
        assert len(columns["mc_dropout_acc_var"][0]) == 3  # epochs 0, 5, 10
        assert sorted(record.drc) == [10]
        np.testing.assert_allclose(record.cosine[0], cosine_matrix(initial[k]), atol=1e-5)
        np.testing.assert_array_equal(record.embedding_values[0], initial[k].flatten())


def test_a_one_hot_mlp_run_gets_its_figures() -> None:
    """Its embedding is its first layer's blocks (no 'embedding' parameter to histogram)."""
    metrics = {"mc_dropout_every": 5, "mc_samples": 4, "drc_epochs": [5], "drc_samples": 2,
               "heatmap_epochs": [10], "histogram_epochs": [10], "checkpoints": 0}
    _, members, population, data = _setup(MODELS["onehot_mlp"], [0], metrics)
    hook = DiagnosticsHook(background_probes=False)
    train(population, members, data, [hook])
    hook.finish()
    record = hook.records[members[0].index]
    assert record.final and "inactive_neurons_pct" in record.series.columns
    figures = run_figures(record)
    assert {"figures/fig3_cosine.png", "figures/fig4_histograms.png",
            "figures/fig7_embedding_histograms.png", "figures/fig11_inactive.png"} <= set(figures)
