"""The ``[metrics]`` section: what is measured, how often, and which epochs are kept.

Split from schema.py because it is the section the diagnostics read and the one that grows
with them; the cross-field rules that tie it to ``[train]`` stay on ``Spec``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, field_validator, model_serializer

from .base import Section

__all__ = ["DropoutSite", "MAX_DRC_RATES", "MetricsSpec"]

# every architecture's dropout sites (spec/architectures.py says whose is whose)
DropoutSite = Literal["embedding", "hidden", "attention", "mlp"]
_DRC_RATES = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
MAX_DRC_RATES = 1000  # each rate is drc_samples passes over the test set per DRC epoch
FOURIER_FREQUENCIES = 5  # key frequencies Nanda et al. found at P = 113
# keys added after specs were first hashed, with their defaults: dumped only when changed
_LATER_DEFAULTS = {"fourier": True, "fourier_frequencies": FOURIER_FREQUENCIES, "figures": True}


def _all_sites() -> list[DropoutSite]:
    """The mlp's sites: a spec's own default is every site of its architecture (Spec fills it
    in); this one serves a MetricsSpec made on its own."""
    return ["embedding", "hidden"]


class MetricsSpec(Section):
    """What is measured and how often (in epochs).

    ``every`` is the evaluation cadence; the cheap diagnostics (embedding cosine structure,
    distribution statistics, inactive neurons) run at every evaluation, MC dropout at the
    evaluations that fall on ``mc_dropout_every``. Chosen-epoch diagnostics (DRC, heatmaps,
    histograms) run at the first evaluation at or after each chosen epoch.
    """

    every: int = Field(10, ge=1)
    """Evaluate every N epochs (and at the last epoch)."""
    grok_threshold: float = Field(0.95, gt=0.0, le=1.0)
    """Accuracy that counts as reached, for the train and test grok epochs."""
    # MC dropout (paper Fig. 1): S stochastic passes over the test set, weights frozen.
    mc_dropout: bool = True
    """Measure test accuracy under Monte-Carlo dropout (Fig. 1)."""
    mc_dropout_every: int = Field(1000, ge=1)
    """Epochs between MC-dropout measurements."""
    mc_samples: int = Field(100, ge=2, le=100_000)
    """Stochastic passes over the test set per MC-dropout measurement."""
    mc_rate: float = Field(0.3, ge=0.0, lt=1.0)
    """Dropout rate of the MC passes."""
    mc_sites: list[DropoutSite] = Field(default_factory=_all_sites)
    """Where the MC passes and the DRC drop units (default: every site of the architecture).
    mlp: 'embedding' (the concatenated embedding), 'hidden' (after every hidden layer);
    transformer: 'embedding' (token plus positional embedding), 'attention' (its output),
    'mlp' (the MLP's hidden activations); onehot_mlp: 'hidden'."""
    # Dropout Robustness Curve (Fig. 2): test accuracy against the dropout rate.
    drc: bool = True
    """Measure the Dropout Robustness Curve (Fig. 2)."""
    drc_epochs: list[int] = Field(default_factory=lambda: [0, 500, 1000, 1500, 2000, 2500])
    """Epochs at which the DRC is measured (each at the first evaluation at or after it)."""
    drc_rates: list[float] = Field(default_factory=lambda: list(_DRC_RATES))
    """The DRC's dropout rates."""
    drc_samples: int = Field(4, ge=1, le=100_000)
    """Passes per DRC rate."""
    # Embedding cosine similarity (Fig. 3): the scalar each evaluation, heatmaps when chosen.
    embedding_cos: bool = True
    """The embeddings' codiagonal cosine structure at every evaluation (Fig. 3)."""
    heatmap_epochs: list[int] = Field(default_factory=lambda: [0, 300, 450, 1200])
    """Epochs whose cosine-similarity matrices are kept and drawn."""
    # Distributions of embedding and layer parameters (Figs. 4, 6, 7, 8).
    distributions: bool = True
    """Every layer's mean and std and the embedding's bimodality (Figs. 4, 6, 7, 8)."""
    histogram_epochs: list[int] = Field(default_factory=lambda: [0, 150, 600, 1650])
    """Epochs whose weight and embedding histograms are kept and drawn."""
    # Inactive hidden ReLU units over the training inputs (Fig. 11).
    inactive_neurons: bool = True
    """Inactive hidden ReLU units over the training inputs (Fig. 11)."""
    # Fourier progress measures (Nanda et al. 2023), on modular tasks over the P × P grid.
    fourier: bool = True
    """The Fourier progress measures at every evaluation: restricted and excluded loss, the
    token embedding's Gini coefficient over frequencies, the key frequencies (a tag); only
    on tasks over the whole P × P grid of Z_P (not 'div', not 's5')."""
    fourier_frequencies: int = Field(FOURIER_FREQUENCIES, ge=1, le=2048)
    """How many key frequencies the Fourier measures keep: those of largest power in the
    last ReLU layer's activations (5 at P = 113 in Nanda et al.; at most ⌊P/2⌋ are kept)."""
    # Log-spaced checkpoints of every member's weights (0 switches them off).
    checkpoints: int = Field(16, ge=0, le=1000)
    """Log-spaced checkpoints of every member's weights, for grokexp figures (0: none)."""
    figures: bool = True
    """Draw each member's figures during the run and log them to its run. false: none are
    drawn (a population's own figures, in its parent run, still are); ``grokexp figures
    RUN_ID ...`` draws them later from what the run logged (its checkpoints among it). On a
    few cores, drawing is a large part of a short member's cost beyond its training."""

    @model_serializer(mode="wrap")
    def _later_keys_when_changed(self, handler: SerializerFunctionWrapHandler
                                 ) -> dict[str, Any]:
        """The keys added later (Fourier, figures) are dumped only when not at their
        defaults, so a spec's dump and hash (its runs' resume, its studies) stay what they
        were before the keys existed."""
        dumped: dict[str, Any] = handler(self)
        return {k: v for k, v in dumped.items()
                if k not in _LATER_DEFAULTS or v != _LATER_DEFAULTS[k]}

    @field_validator("mc_sites")
    @classmethod
    def _some_site(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("needs at least one dropout site")
        return list(dict.fromkeys(value))

    @field_validator("drc_rates")
    @classmethod
    def _rates_in_range(cls, value: list[float]) -> list[float]:
        if not value or not all(0.0 <= r < 1.0 for r in value):
            raise ValueError("needs rates in [0, 1)")
        if len(value) > MAX_DRC_RATES:
            raise ValueError(f"needs at most {MAX_DRC_RATES} rates (got {len(value)})")
        return value

    @field_validator("drc_epochs", "heatmap_epochs", "histogram_epochs")
    @classmethod
    def _epochs_sorted(cls, value: list[int]) -> list[int]:
        if any(e < 0 for e in value):
            raise ValueError("epochs must be >= 0")
        return sorted(set(value))
