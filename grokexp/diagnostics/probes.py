"""What a probe measures: diagnostics on the weights of one epoch, as work to run.

A probe is any measurement that needs only the weights of its epoch: the per-evaluation
diagnostics (:func:`cadence_metrics`), and above all the dropout probes (MC dropout, the DRC:
hundreds of stochastic passes over the test set). Each is a :class:`ProbeWork`: a module-level
function and its arguments (weights, pairs, seeds, epoch), nothing else, so that it gives the
same values wherever and whenever it runs. How probes run beside the training (the probe
process, the queue, the hand-over) is ``probe_queue.py``'s business; here everything is pure
and runs in place.

Each member draws its dropout masks from its own generator, seeded from its own seed, the
probe and the epoch: its values do not depend on who trains beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ..engine.arch.base import Architecture
from ..engine.arch.mlp import MlpArch
from ..engine.model import Population
from ..engine.seeding import generator_for
from ..engine.sweep import Member
from ..engine.train import TrainData
from ..spec.schema import MetricsSpec, TaskSpec
from .metrics.activity import activation_sparsity
from .metrics.distribution import embedding_shape, parameter_stats
from .metrics.dropout import dropout_robustness, mc_dropout_accuracy
from .metrics.embedding import codiagonal_structure, cosine_matrix
from .metrics.fourier import KEY_FREQUENCY, fourier_measures
from .metrics.progress import fourier_power_share, weight_norm

__all__ = ["ProbeWork", "Values", "figure_weights", "mc_probe", "drc_probe", "cadence_probe",
           "cadence_metrics", "drc_key", "frozen_params", "not_measured", "fourier_probe",
           "fourier_cannot", "key_frequency_tag"]

Values = dict[str, torch.Tensor]  # name → (K,)
TOKEN_EMBEDDING = "token_embedding"  # figure_weights' key: not a parameter name


def drc_key(rate: float) -> str:
    return f"drc_acc_r{rate:g}"


def _generators(seeds: Sequence[int], purpose: str,
                device: torch.device) -> list[torch.Generator]:
    """One generator per member for one probe (``purpose`` names the probe and its epoch,
    e.g. ``mc_dropout:1000``), seeded from that member's own seed."""
    return [generator_for(seed, purpose, device) for seed in seeds]


def frozen_params(population: Population) -> dict[str, torch.Tensor]:
    """A copy of every member's weights that later training steps cannot change (the probe
    queue makes its own: probes handed to it may take the live weights)."""
    return {n: t.detach().clone() for n, t in population.params.items()}


@torch.no_grad()
def figure_weights(arch: Architecture, state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """One member's final weights for its figures (numpy): every parameter as it is, and
    ``token_embedding``, the architecture's token embedding as the next layer reads it (the
    transformer's without its ``=`` row; the one-hot MLP's two first-layer blocks side by
    side): the rows the embedding metrics measure. None where it has no token embedding."""
    out = {name: t.detach().cpu().numpy() for name, t in state.items()}
    token = arch.token_embedding({name: t[None] for name, t in state.items()})
    if token is not None:
        out[TOKEN_EMBEDDING] = token[0].detach().cpu().numpy()
    return out


@torch.no_grad()
def cadence_metrics(params: Mapping[str, torch.Tensor], arch: Architecture, data: TrainData,
                    cfg: MetricsSpec) -> dict[str, torch.Tensor]:
    """The per-evaluation diagnostics of every member, each (K,) (the dropout probes aside).

    The embedding's cosine structure, Fourier share, bimodality and peaks are those of the
    architecture's token embedding (``Architecture.token_embedding``: the paper MLP's table
    as the next layer sees it, after ``model.embedding_activation``, as the paper measures
    them; the one-hot MLP's two first-layer blocks side by side); the layer statistics are
    those of the parameters themselves; inactive units are counted at its ReLU sites. What an
    architecture lacks is not measured (:func:`not_measured`).
    """
    tr = data.splits.train_index  # (K, N_train)
    return _cadence_values(params, arch, cfg, data.table.left[tr], data.table.right[tr],
                           data.table.residues)


def not_measured(params: Mapping[str, torch.Tensor], arch: Architecture,
                 cfg: MetricsSpec, residues: bool = True) -> list[str]:
    """What :func:`cadence_metrics` leaves out for this architecture and task (``residues``:
    ``PairTable.residues``), and why: a line each."""
    out = []
    if cfg.embedding_cos and not residues:
        out.append("the tokens are not residues mod P (s5): the embedding's codiagonal "
                   "structure and Fourier share are not measured")
    if (cfg.embedding_cos or cfg.distributions) and arch.token_embedding(params) is None:
        out.append(f"{arch.name} has no token embedding: its cosine structure, Fourier "
                   "share, bimodality and peaks are not measured")
    if cfg.inactive_neurons and not arch.relu_sites:
        out.append(f"{arch.name} has no ReLU layer here: inactive neurons are not measured")
    return out


def fourier_cannot(task: TaskSpec, arch: Architecture) -> str | None:
    """Why the Fourier progress measures cannot apply to this task and architecture (a line
    to say once), or None when they can: they need every pair of the P × P grid of Z_P and
    a ReLU layer whose activations give the key frequencies."""
    what = "the Fourier progress measures are not measured"
    if task.operation == "div":
        return f"task 'div' has no pairs with b = 0, so no whole P × P grid: {what}"
    if task.operation == "s5" or not getattr(task, "residues", True):
        return f"task '{task.operation}' is not over the cyclic group Z_P: {what}"
    if not arch.relu_sites:
        return f"{arch.name} has no ReLU layer here to find key frequencies in: {what}"
    return None


def key_frequency_tag(row: dict[str, float]) -> str | None:
    """Takes a Fourier probe's key frequencies out of its row (they are no metric) and
    returns them as a tag value, '14,35,41'; None when the row has none."""
    names = sorted((n for n in row if n.startswith(KEY_FREQUENCY)),
                   key=lambda n: int(n[len(KEY_FREQUENCY):]))
    return ",".join(str(int(row.pop(n))) for n in names) if names else None


def _stat_layers(arch: Architecture) -> int | None:
    """The paper MLP keeps its metric names ('hidden_weight_mean' with one hidden layer); any
    other architecture's statistics are named after its parameters ('.' → '_')."""
    return len(arch.hidden) if isinstance(arch, MlpArch) else None


def _cadence_values(params: Mapping[str, torch.Tensor], arch: Architecture, cfg: MetricsSpec,
                    train_left: torch.Tensor, train_right: torch.Tensor,
                    residues: bool = True) -> Values:
    out: Values = {}
    seen = arch.token_embedding(params)  # what the next layer reads (after a ReLU, if any)
    if cfg.embedding_cos and seen is not None and residues:  # both assume Z_P's order
        out["embedding_cos_structure"] = codiagonal_structure(cosine_matrix(seen))
        out["embedding_fourier_share"] = fourier_power_share(seen)
    if cfg.distributions:
        out["weight_norm"] = weight_norm(params)
        out.update(parameter_stats(params, _stat_layers(arch)))
        if seen is not None:
            out.update(embedding_shape(seen))
    if cfg.inactive_neurons:
        out.update(activation_sparsity(params, arch, train_left, train_right))
    return out


def _mc_values(params: Mapping[str, torch.Tensor], arch: Architecture, cfg: MetricsSpec,
               seeds: Sequence[int], epoch: int, left: torch.Tensor, right: torch.Tensor,
               labels: torch.Tensor) -> Values:
    gens = _generators(seeds, f"mc_dropout:{epoch}", left.device)
    mean, var = mc_dropout_accuracy(params, arch, left, right, labels, cfg.mc_rate,
                                    cfg.mc_samples, cfg.mc_sites, gens)
    return {"mc_dropout_acc_mean": mean, "mc_dropout_acc_var": var}


def _drc_values(params: Mapping[str, torch.Tensor], arch: Architecture, cfg: MetricsSpec,
                seeds: Sequence[int], epoch: int, left: torch.Tensor, right: torch.Tensor,
                labels: torch.Tensor) -> Values:
    gens = _generators(seeds, f"drc:{epoch}", left.device)
    curve = dropout_robustness(params, arch, left, right, labels, cfg.drc_rates,
                               cfg.drc_samples, cfg.mc_sites, gens)  # (K, R)
    return {drc_key(rate): curve[:, i] for i, rate in enumerate(cfg.drc_rates)}


class ProbeWork:
    """A probe as work to run: a module-level function and its arguments (the tensors among
    them are read when it runs; ``probe_process.sent`` copies them for the probe process)."""

    def __init__(self, fn: Callable[..., Values], *args: Any):
        self.fn, self.args = fn, args

    def __call__(self) -> Values:
        return self.fn(*self.args)


def _test_pairs(data: TrainData) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    table, te = data.table, data.splits.test_index  # (K, N_test)
    return table.left[te], table.right[te], table.labels[te]


def _seeds(members: Sequence[Member]) -> list[int]:
    return [m.spec.train.seed for m in members]


def mc_probe(params: Mapping[str, torch.Tensor], arch: Architecture, data: TrainData,
             cfg: MetricsSpec, members: Sequence[Member], epoch: int) -> ProbeWork:
    """MC-dropout mean and variance of the test accuracy at this epoch, as work to run
    (its weights are read when it runs, or copied when the probe queue takes it)."""
    return ProbeWork(_mc_values, dict(params), arch, cfg, _seeds(members), epoch,
                     *_test_pairs(data))


def drc_probe(params: Mapping[str, torch.Tensor], arch: Architecture, data: TrainData,
              cfg: MetricsSpec, members: Sequence[Member], epoch: int) -> ProbeWork:
    """The Dropout Robustness Curve at this epoch, one (K,) value per rate, as work to run."""
    return ProbeWork(_drc_values, dict(params), arch, cfg, _seeds(members), epoch,
                     *_test_pairs(data))


def _fourier_values(params: Mapping[str, torch.Tensor], arch: Architecture, n: int,
                    train_left: torch.Tensor, train_right: torch.Tensor,
                    train_labels: torch.Tensor, test_left: torch.Tensor,
                    test_right: torch.Tensor, test_labels: torch.Tensor) -> Values:
    return fourier_measures(params, arch, (train_left, train_right, train_labels),
                            (test_left, test_right, test_labels), n)


def fourier_probe(params: Mapping[str, torch.Tensor], arch: Architecture, data: TrainData,
                  cfg: MetricsSpec) -> ProbeWork:
    """The Fourier progress measures at this epoch (``metrics/fourier.py``), as work to run:
    the excluded loss on each member's training pairs, the restricted loss on its test
    pairs."""
    table, tr = data.table, data.splits.train_index
    return ProbeWork(_fourier_values, dict(params), arch, cfg.fourier_frequencies,
                     table.left[tr], table.right[tr], table.labels[tr], *_test_pairs(data))


def cadence_probe(params: Mapping[str, torch.Tensor], arch: Architecture, data: TrainData,
                  cfg: MetricsSpec) -> ProbeWork:
    """:func:`cadence_metrics` at this epoch, as work to run."""
    tr = data.splits.train_index
    return ProbeWork(_cadence_values, dict(params), arch, cfg, data.table.left[tr],
                     data.table.right[tr], data.table.residues)
