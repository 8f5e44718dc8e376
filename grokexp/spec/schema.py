"""The experiment spec: one validated, frozen description of a run, read from TOML or JSON.

The key names here are a contract with users' spec files; add keys, never rename them.
This module holds the sections as pydantic models and the cross-field rules; io.py turns
text into a ``Spec`` and back, optimize.py holds the ``[optimize]`` section, task.py
the ``[task]``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .architectures import ARCHITECTURES
from .base import Section, flatten
from .init import ALL_GROUPS, InitSpec, groups_of
from .keys import known_path
from .metrics import MetricsSpec
from .model import ModelSpec
from .optimize import OptimizeSpec
from .task import TaskSpec

__all__ = ["Spec", "TaskSpec", "ModelSpec", "TrainSpec", "GradFilterSpec", "MetricsSpec",
           "TrackingSpec"]


class GradFilterSpec(Section):
    """Grokfast (Lee et al. 2024, ironjr/grokfast): add the gradient's slow part back.

    ``ema``: ``g + lamb·EMA_alpha(g)`` (defaults alpha 0.98, lamb 2); ``ma``: ``g + lamb·mean
    of the last window gradients``, unchanged until the window is full (window 100, lamb 5);
    ``none``: no filter (so a sweep can list it beside the others).
    """

    kind: Literal["none", "ema", "ma"]
    """Which Grokfast filter: 'ema', 'ma', or 'none'."""
    alpha: float | None = Field(None, ge=0.0, lt=1.0)
    """EMA decay of the gradient's slow part ('ema'; default 0.98)."""
    window: int | None = Field(None, ge=1, le=100_000)
    """Number of past gradients averaged ('ma'; default 100)."""
    lamb: float | None = Field(None, allow_inf_nan=False)
    """Weight of the slow part added back ('ema' default 2, 'ma' default 5)."""

    @model_validator(mode="before")
    @classmethod
    def _defaults_of_kind(cls, raw: Any) -> Any:
        """Each kind's published defaults; a key of another kind is a mistake, not ignored."""
        if not isinstance(raw, Mapping) or raw.get("kind") not in _FILTER_DEFAULTS:
            return raw
        defaults = _FILTER_DEFAULTS[raw["kind"]]
        for name in ("alpha", "window", "lamb"):
            if name in raw and name not in defaults:
                raise ValueError(f"'{name}' does not apply to kind '{raw['kind']}'")
        return {**defaults, **raw}


_FILTER_DEFAULTS: dict[str, dict[str, Any]] = {
    "none": {}, "ema": {"alpha": 0.98, "lamb": 2.0}, "ma": {"window": 100, "lamb": 5.0}}


class TrainSpec(Section):
    """Optimiser and schedule. ``seed`` drives init and batch order; ``split_seed`` the split.

    The reducers (docs/reducers.md) act in this order on every step: the
    gradient filter, the orthogonal projection, the AdamW step (the embedding's lr times
    ``embedding_lr_scale``), then the rescale to ``weight_norm``.
    """

    optimizer: Literal["adamw"] = "adamw"
    """The optimiser: AdamW, as in the paper."""
    lr: float = Field(3e-4, gt=0.0, le=10.0)
    """AdamW's learning rate."""
    weight_decay: float = Field(1.0, ge=0.0, le=1000.0)
    """AdamW's decoupled weight decay."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW's (β1, β2)."""
    eps: float = Field(1e-8, gt=0.0)
    """AdamW's ε."""
    batch_size: int = Field(128, ge=1, le=1_000_000)
    """Training pairs per step."""
    epochs: int = Field(3000, ge=1, le=10_000_000)
    """The budget: passes over the training set."""
    seed: int = Field(0, ge=0, le=2**63 - 1)
    """Seeds the initialisation, the batch order and training dropout."""
    split_seed: int = Field(0, ge=0, le=2**63 - 1)
    """Seeds the train/test split, apart from seed so that a sweep can fix or vary it."""
    stop_after_generalized: int | None = Field(None, ge=0)
    """Epochs to go on once test accuracy reaches the threshold (unset: the whole budget)."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout rate during training, at every dropout site of the architecture (mlp: the
    embedding and after every hidden layer)."""
    device: str = "auto"
    """'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:N' or 'mps'."""
    grad_filter: GradFilterSpec | None = None
    """Grokfast: add the gradient's slow part back (a table with 'kind')."""
    # ⊥Grad (Prieto et al. 2025): each tensor's gradient minus its part along the weights
    orthogonal_grad: bool = False
    """⊥Grad (Prieto et al. 2025): drop each gradient's part along its weights."""
    # Omnigrok (Liu et al. 2023): all parameters rescaled to this total L2 norm after every
    # step; "fixed" keeps the member's initial norm
    weight_norm: float | Literal["fixed"] | None = None
    """Omnigrok (Liu et al. 2023): rescale all parameters to this L2 norm after each step;
    'fixed' keeps the initial norm."""
    embedding_lr_scale: float = Field(1.0, gt=0.0, le=1e6)
    """The token embedding's learning rate as a multiple of lr (onehot_mlp: its first
    layer's)."""

    @field_validator("weight_norm", mode="before")
    @classmethod
    def _fixed_or_positive(cls, value: Any) -> Any:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if value is None or value == "fixed" or (number and 0 < value < math.inf):
            return value
        raise ValueError("must be \"fixed\" or a positive number")

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in value):
            raise ValueError("each beta must be in [0, 1)")
        return value

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", value):
            raise ValueError("must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
        return value


class TrackingSpec(Section):
    """Where the run is recorded; the CLI's ``--tracking-uri`` and MLFLOW_TRACKING_URI win."""

    experiment: str | None = Field(None, min_length=1)
    """The MLflow experiment (default: the spec's name)."""
    tracking_uri: str | None = None
    """The MLflow store (default: sqlite:///mlruns/mlflow.db under the working directory);
    --tracking-uri and MLFLOW_TRACKING_URI win."""
    log_model: bool = True
    """Log each member's final network as an MLflow LoggedModel of its run (false: none)."""


# Every section's docstring is a description in the JSON Schema (grokexp schema) users read.
class Spec(Section):
    """A whole experiment. ``sweep`` turns it into a population of members (see sweep.py):
    the product of its value lists, times ``seeds``, times ``variants`` (a list of tables
    of dotted keys, each one member configuration: "one of these", where the lists say
    "every combination of")."""

    name: str = Field(min_length=1, max_length=200)
    """The experiment's name: the MLflow experiment's too, unless [tracking] says otherwise."""
    description: str = ""
    """Free text, logged with the run."""
    task: TaskSpec = Field(default_factory=TaskSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    init: InitSpec = Field(default_factory=InitSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    sweep: dict[str, Any] | None = None
    """Dotted keys to lists of values (and 'seeds', 'split_seeds', 'variants'): members."""
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    optimize: OptimizeSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _sites_of_architecture(cls, raw: Any) -> Any:
        """``metrics.mc_sites`` left out means every dropout site of the architecture."""
        if not isinstance(raw, Mapping):
            return raw
        model, metrics = raw.get("model", {}), raw.get("metrics", {})
        name = (model.get("architecture", "mlp") if isinstance(model, Mapping)
                else getattr(model, "architecture", "mlp"))
        if not isinstance(name, str) or name not in ARCHITECTURES:
            return raw
        sites = list(ARCHITECTURES[name].sites)
        if isinstance(metrics, Mapping) and "mc_sites" not in metrics:
            return {**raw, "metrics": {**metrics, "mc_sites": sites}}
        if isinstance(metrics, MetricsSpec) and "mc_sites" not in metrics.model_fields_set:
            return {**raw, "metrics": metrics.model_copy(update={"mc_sites": sites})}
        return raw

    @field_validator("sweep")
    @classmethod
    def _sweep_lists(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        flat = flatten(value)
        for key, values in flat.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"'{key}' must be a non-empty list of values")
        variants = flat.get("variants")
        if variants is not None:
            if not all(isinstance(v, Mapping) for v in variants):
                raise ValueError("'variants' must be a list of tables of dotted keys")
            flat["variants"] = [flatten(v) for v in variants]
        for name in ("seeds", "split_seeds"):  # split_seeds[i] pairs with seeds[i]
            if name in flat and not all(isinstance(s, int) and s >= 0 for s in flat[name]):
                raise ValueError(f"'{name}' must be a list of non-negative integers")
        return flat

    @property
    def experiment_name(self) -> str:
        return self.tracking.experiment or self.name

    def semantic_problems(self) -> list[tuple[str, str]]:
        """Cross-field rules pydantic's per-field checks cannot see, as (path, message)."""
        out = self.model.problems() + self._architecture_problems()
        groups = groups_of(self.model.architecture)
        for layer in groups:
            weight = self.init.resolve(layer, "weight").problems()
            bias = [p for p in self.init.resolve(layer, "bias").problems() if p not in weight]
            out += [(f"init.{layer}.{field}", msg) for field, msg in weight]
            out += [(f"init.{layer}.bias.{field}", msg) for field, msg in bias]
        frozen = [layer for layer in groups if not self.init.trainable(layer)]
        if self.train.weight_norm is not None and frozen:
            out.append(("train.weight_norm", f"cannot hold the norm with a frozen layer "
                        f"(init.{frozen[0]}.trainable = false): the rescale would move it"))
        out += self.task.problems()
        for key in (self.sweep or {}):
            if key not in ("seeds", "split_seeds", "variants") and not _known_path(key):
                out.append((f"sweep.{key}", "unknown key"))
        pairs = [len((self.sweep or {}).get(k, [])) for k in ("split_seeds", "seeds")]
        sweeps_split = "train.split_seed" in (self.sweep or {}) or any(
            "train.split_seed" in v for v in (self.sweep or {}).get("variants", []))
        if pairs[0] and sweeps_split:
            out.append(("sweep.split_seeds", "given beside a sweep of train.split_seed: "
                        "each member would take both; keep one"))
        if pairs[0] and pairs[0] != pairs[1]:
            out.append(("sweep.split_seeds", f"{pairs[0]} value(s) for {pairs[1]} sweep.seeds: "
                        "each pairs with the seed at its position, so give as many"))
        for n, variant in enumerate((self.sweep or {}).get("variants", [])):
            out += [(f"sweep.variants[{n}].{key}", "unknown key")
                    for key in variant if not _known_path(key)]
        if self.optimize is not None:
            out += self.optimize.problems(_known_path)
        return out

    def _architecture_problems(self) -> list[tuple[str, str]]:
        """An init table or a dropout site the spec's architecture does not have."""
        name = self.model.architecture
        facts = ARCHITECTURES[name]
        out = [(f"init.{group}", f"not an init group of architecture '{name}' (its groups: "
                                 f"{', '.join(facts.groups)})")
               for group in ALL_GROUPS
               if group not in facts.groups and self.init.layer(group) is not None]
        lacking = [f"'{site}'" for site in self.metrics.mc_sites if site not in facts.sites]
        if lacking:
            out.append(("metrics.mc_sites", f"{', '.join(lacking)}: not a dropout site of "
                        f"architecture '{name}' (its sites: {', '.join(facts.sites)})"))
        return out

    def diagnostic_warnings(self) -> list[tuple[str, str]]:
        """Diagnostics whose chosen epochs fall past ``train.epochs``, figures never drawable,
        or whose Fourier measures cannot tell key frequencies from the rest, as (path, msg).

        Not errors: a short run is legitimate. But the defaults are set for the paper's
        3000-epoch budget, and a 400-epoch run would otherwise draw Fig. 1 from one point
        without a word.
        """
        m, epochs = self.metrics, self.train.epochs
        out: list[tuple[str, str]] = []
        if m.mc_dropout and epochs // m.mc_dropout_every + 1 < 3:
            points = epochs // m.mc_dropout_every + 1
            out.append(("metrics.mc_dropout_every",
                        f"{m.mc_dropout_every} with train.epochs = {epochs}: MC dropout is "
                        f"measured at {points} epoch(s) only (Fig. 1); lower it"))
        for on, key in ((m.drc, "drc_epochs"), (m.embedding_cos, "heatmap_epochs"),
                        (m.distributions, "histogram_epochs")):
            late = [e for e in getattr(m, key) if e > epochs]
            if on and late:
                shown = ", ".join(map(str, late))
                out.append((f"metrics.{key}", f"{shown} past train.epochs = {epochs}: "
                            "not measured"))
        if not m.figures and m.checkpoints == 0:  # grokexp figures redraws from checkpoints
            out.append(("metrics.figures", "false with metrics.checkpoints = 0: no member's "
                        "figures can be drawn later (grokexp figures needs checkpoints)"))
        p = self.task.modulus
        if (m.fourier and p is not None and self.task.operation != "div"
                and self.model.activation == "relu"  # every architecture's ReLU site
                and m.fourier_frequencies >= p // 2):
            out.append(("metrics.fourier_frequencies",
                        f"{m.fourier_frequencies} with task.modulus = {p}: all {p // 2} "
                        "frequencies of Z_P are key, so the restricted loss is the test loss "
                        "and the excluded loss has nothing left to exclude; lower it"))
        return out


def _known_path(dotted: str) -> bool:
    """Whether a dotted key names a field of the spec (sweep and optimize keys must)."""
    return known_path(Spec, dotted)
