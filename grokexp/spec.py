"""The experiment spec: one validated, frozen description of a run, read from TOML or JSON.

The key names here are a contract with users' spec files; add keys, never rename them.
Parsing and validation are pure (text in, ``Spec`` out); reading the file is the CLI's job.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import SpecError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "Spec",
    "TaskSpec",
    "ModelSpec",
    "InitSpec",
    "LayerInit",
    "BiasInit",
    "ResolvedInit",
    "TrainSpec",
    "MetricsSpec",
    "TrackingSpec",
    "OptimizeSpec",
    "SearchDim",
    "LAYERS",
    "parse_spec_text",
    "apply_overrides",
    "validate_spec",
    "load_spec",
    "spec_to_dict",
    "spec_to_toml",
    "spec_hash",
    "flatten",
    "set_dotted",
]

Scheme = Literal[
    "xavier_normal", "xavier_uniform", "kaiming_normal", "kaiming_uniform",
    "normal", "uniform", "constant",
]
LAYERS = ("embedding", "hidden", "output")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskSpec(_Section):
    """The algorithmic data set: every pair (i, j) of residues mod P, labelled i ∘ j mod P."""

    modulus: int = Field(53, ge=2, le=4096)
    operation: Literal["add", "sub", "mul", "div"] = "add"
    train_fraction: float = Field(0.5, gt=0.0, lt=1.0)


class ModelSpec(_Section):
    """Embedding of each operand, concatenated, then ReLU MLP layers and a P-way output."""

    embedding_dim: int = Field(128, ge=1, le=65536)
    hidden: int | list[int] = 256
    activation: Literal["relu", "gelu", "tanh"] = "relu"
    embedding_activation: Literal["none", "relu"] = "none"

    @field_validator("hidden")
    @classmethod
    def _positive_widths(cls, value: int | list[int]) -> int | list[int]:
        widths = [value] if isinstance(value, int) else value
        if not widths:
            raise ValueError("needs at least one hidden layer")
        if any(w < 1 or w > 65536 for w in widths):
            raise ValueError("widths must be between 1 and 65536")
        return value

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        return (self.hidden,) if isinstance(self.hidden, int) else tuple(self.hidden)


class _InitFields(_Section):
    """Fields shared by every init table; ``None`` means 'inherit from the table above'."""

    scheme: Scheme | None = None
    mean: float | None = None
    std: float | None = Field(None, gt=0.0)
    low: float | None = None
    high: float | None = None
    value: float | None = None
    scale: float | None = None
    shift: float | None = None


class BiasInit(_InitFields):
    """``[init.<layer>.bias]``: how that layer's bias is drawn (default: like its weights)."""


class LayerInit(_InitFields):
    """``[init.<layer>]``: overrides the default init for that layer's weights."""

    trainable: bool = True
    bias: BiasInit | None = None


@dataclass(frozen=True)
class ResolvedInit:
    """The concrete recipe for one tensor after the per-layer tables have been merged."""

    scheme: str
    mean: float | None
    std: float | None
    low: float | None
    high: float | None
    value: float | None
    scale: float
    shift: float

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) pairs for parameters this scheme needs but does not have."""
        needs = {"normal": ("std",), "uniform": ("low", "high"), "constant": ("value",)}
        out = [(f, f"required when scheme is '{self.scheme}'")
               for f in needs.get(self.scheme, ()) if getattr(self, f) is None]
        if self.scheme == "uniform" and not out and not (self.low < self.high):  # type: ignore[operator]
            out.append(("high", f"must be > low ({self.low}) (got {self.high})"))
        return out


class InitSpec(_InitFields):
    """``[init]``: the default for every layer, with per-layer tables that override it.

    The paper's default is Xavier normal on weights and biases, σ = sqrt(2/(n_in+n_out)),
    multiplied by ``scale`` (α) and then moved by ``shift``.
    """

    scheme: Scheme | None = "xavier_normal"
    scale: float | None = 1.0
    shift: float | None = 0.0
    bias: BiasInit | None = None
    embedding: LayerInit | None = None
    hidden: LayerInit | None = None
    output: LayerInit | None = None

    def layer(self, name: str) -> LayerInit | None:
        table: LayerInit | None = getattr(self, name)
        return table

    def trainable(self, layer: str) -> bool:
        table = self.layer(layer)
        return True if table is None else table.trainable

    def resolve(self, layer: str, part: Literal["weight", "bias"] = "weight") -> ResolvedInit:
        """Merge default → layer table (→ ``init.bias`` → ``init.<layer>.bias`` for biases)."""
        tables: list[_InitFields | None] = [self, self.layer(layer)]
        if part == "bias":
            own = self.layer(layer)
            tables += [self.bias, own.bias if own is not None else None]
        merged: dict[str, Any] = {}
        for source in tables:
            if source is None:
                continue
            for field in _InitFields.model_fields:
                v = getattr(source, field)
                if v is not None:
                    merged[field] = v
        return ResolvedInit(
            scheme=merged.get("scheme", "xavier_normal"),
            mean=merged.get("mean"), std=merged.get("std"), low=merged.get("low"),
            high=merged.get("high"), value=merged.get("value"),
            scale=float(merged.get("scale", 1.0)), shift=float(merged.get("shift", 0.0)),
        )


class TrainSpec(_Section):
    """Optimiser and schedule. ``seed`` drives init and batch order; ``split_seed`` the split."""

    optimizer: Literal["adamw"] = "adamw"
    lr: float = Field(3e-4, gt=0.0, le=10.0)
    weight_decay: float = Field(1.0, ge=0.0, le=1000.0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0.0)
    batch_size: int = Field(128, ge=1, le=1_000_000)
    epochs: int = Field(3000, ge=1, le=10_000_000)
    seed: int = Field(0, ge=0, le=2**63 - 1)
    split_seed: int = Field(0, ge=0, le=2**63 - 1)
    stop_after_generalized: int | None = Field(None, ge=0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    device: str = "auto"

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


class MetricsSpec(_Section):
    """What is measured and how often (in epochs)."""

    every: int = Field(10, ge=1)
    grok_threshold: float = Field(0.95, gt=0.0, le=1.0)


class TrackingSpec(_Section):
    """Where the run is recorded; the CLI's ``--tracking-uri`` and MLFLOW_TRACKING_URI win."""

    experiment: str | None = Field(None, min_length=1)
    tracking_uri: str | None = None


class SearchDim(_Section):
    """One dimension of an Optuna search space: ``{low, high, log, step}`` or ``{choices}``.

    Integer bounds (both written as integers) make an integer dimension; anything else with
    ``low``/``high`` is a float dimension; ``choices`` is categorical.
    """

    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    step: int | float | None = Field(None, gt=0)
    choices: list[int | float | str | bool] | None = Field(None, min_length=1)

    @property
    def is_int(self) -> bool:
        return (isinstance(self.low, int) and isinstance(self.high, int)
                and (self.step is None or isinstance(self.step, int)))

    def problems(self) -> list[tuple[str, str]]:
        if self.choices is not None:
            extra = [f for f in ("low", "high", "step") if getattr(self, f) is not None]
            return [(f, "not allowed with choices") for f in extra]
        if self.low is None or self.high is None:
            return [(f, "required (or give choices)") for f in ("low", "high")
                    if getattr(self, f) is None]
        if not self.low < self.high:
            return [("high", f"must be > low ({self.low}) (got {self.high})")]
        if self.log and self.low <= 0:
            return [("low", f"must be > 0 when log = true (got {self.low})")]
        if self.log and self.step is not None:
            return [("step", "not allowed when log = true")]
        return []


class OptimizeSpec(_Section):
    """``[optimize]``: an Optuna study over dotted spec keys that minimises grokking delay.

    Each trial trains its point with ``seeds`` seeds; the objective is the upper median over
    them. A seed that never generalises within ``train.epochs`` is censored and scores
    ``censor_penalty × train.epochs``, more than any real delay or grok epoch can be.
    """

    space: dict[str, Any]
    seeds: int | list[int] = 3
    objective: Literal["grokking_delay", "test_grok_epoch"] = "grokking_delay"
    sampler: Literal["tpe", "gp", "random"] = "tpe"
    seed: int = Field(0, ge=0, le=2**63 - 1)
    n_startup_trials: int = Field(8, ge=0)
    pruner: Literal["none", "median", "threshold"] = "none"
    prune_warmup: int = Field(0, ge=0)
    prune_min_test_acc: float = Field(0.5, ge=0.0, le=1.0)
    n_trials: int = Field(32, ge=0, le=1_000_000)
    batch: int = Field(4, ge=1, le=100_000)
    enqueue: list[dict[str, Any]] = Field(default_factory=list)
    censor_penalty: float = Field(2.0, gt=1.0)
    heartbeat_s: float = Field(10.0, gt=0.0)
    grace_s: float = Field(60.0, gt=0.0)

    @field_validator("space", mode="before")
    @classmethod
    def _flat_space(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        if not value:
            raise ValueError("needs at least one dimension")
        return _flatten_space(value)

    @field_validator("seeds")
    @classmethod
    def _seed_list(cls, value: int | list[int]) -> int | list[int]:
        if isinstance(value, int) and value < 1:
            raise ValueError("must be >= 1")
        if isinstance(value, list) and (not value or len(set(value)) != len(value)
                                        or any(s < 0 for s in value)):
            raise ValueError("must be a non-empty list of distinct non-negative integers")
        return value

    def dims(self) -> dict[str, SearchDim]:
        """The space as validated dimensions (call after ``problems()`` is empty)."""
        return {key: SearchDim.model_validate(value) for key, value in self.space.items()}

    def problems(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for key, value in self.space.items():
            where = f"optimize.space.{key}"
            if not _known_path(key):
                out.append((where, "unknown key"))
                continue
            if key == "train.seed" or key.split(".")[0] not in ("task", "model", "init",
                                                               "train", "metrics"):
                out.append((where, "cannot be searched (seeds are optimize.seeds)"
                            if key == "train.seed" else "cannot be searched"))
                continue
            try:
                dim = SearchDim.model_validate(value)
            except ValidationError as err:
                out += [(".".join([where, *(str(p) for p in e["loc"])]),
                         _MESSAGES.get(e["type"], str(e["msg"]))) for e in err.errors()]
                continue
            out += [(f"{where}.{field}", msg) for field, msg in dim.problems()]
        for n, point in enumerate(self.enqueue):
            out += [(f"optimize.enqueue[{n}].{k}", "not a key of optimize.space")
                    for k in flatten(point) if k not in self.space]
        return out


def _flatten_space(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables down to the dimension tables (those with low/high/choices/…)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping) and not set(value) & set(SearchDim.model_fields):
            out.update(_flatten_space(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


class Spec(_Section):
    """A whole experiment. ``sweep`` turns it into a population of members (see sweep.py)."""

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    task: TaskSpec = Field(default_factory=TaskSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    init: InitSpec = Field(default_factory=InitSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    sweep: dict[str, Any] | None = None
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    optimize: OptimizeSpec | None = None

    @field_validator("sweep")
    @classmethod
    def _sweep_lists(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        flat = flatten(value)
        for key, values in flat.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"'{key}' must be a non-empty list of values")
        seeds = flat.get("seeds")
        if seeds is not None and not all(isinstance(s, int) and s >= 0 for s in seeds):
            raise ValueError("'seeds' must be a list of non-negative integers")
        return flat

    @property
    def experiment_name(self) -> str:
        return self.tracking.experiment or self.name

    def semantic_problems(self) -> list[tuple[str, str]]:
        """Cross-field rules pydantic's per-field checks cannot see, as (path, message)."""
        out: list[tuple[str, str]] = []
        for layer in LAYERS:
            weight = self.init.resolve(layer, "weight").problems()
            bias = [p for p in self.init.resolve(layer, "bias").problems() if p not in weight]
            out += [(f"init.{layer}.{field}", msg) for field, msg in weight]
            out += [(f"init.{layer}.bias.{field}", msg) for field, msg in bias]
        if self.task.operation == "div" and not _is_prime(self.task.modulus):
            out.append(("task.modulus", f"must be prime for 'div' (got {self.task.modulus})"))
        for key in (self.sweep or {}):
            if key != "seeds" and not _known_path(key):
                out.append((f"sweep.{key}", "unknown key"))
        if self.optimize is not None:
            out += self.optimize.problems()
        return out


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


def _known_path(dotted: str) -> bool:
    """Whether a dotted key names a field of the spec (sweep and optimize keys must)."""
    model: Any = Spec
    for part in dotted.split("."):
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return False
        annotation = fields[part].annotation
        model = next((a for a in getattr(annotation, "__args__", (annotation,))
                      if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return True


# ---------------------------------------------------------------- parsing and merging


def parse_spec_text(text: str, source: str) -> dict[str, Any]:
    """TOML or JSON text → raw dict (JSON when the source ends in .json)."""
    try:
        if source.endswith(".json"):
            raw = json.loads(text)
        else:
            raw = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise SpecError([f"{source}: syntax error: {err}"]) from None
    if not isinstance(raw, dict):
        raise SpecError([f"{source}: the top level must be a table"])
    return raw


def parse_override_value(text: str) -> Any:
    """A ``--set`` value as a TOML literal (``1e-3``, ``[1, 2]``, ``true``); else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict, creating tables on the way."""
    parts = dotted.split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise SpecError([f"{'.'.join(parts[: i + 1])}: is a value, not a table"])
        node = child
    node[parts[-1]] = value


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Merge ``dotted.key=value`` strings into a deep copy of the raw dict."""
    merged: dict[str, Any] = json.loads(json.dumps(raw))
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        shown = item if item.isprintable() else json.dumps(item)  # one line, always
        if not sep or not key or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", key):
            raise SpecError([f"--set {shown}: expected dotted.key=value"])
        try:
            set_dotted(merged, key, parse_override_value(value.strip()))
        except SpecError as err:
            raise SpecError([f"--set {shown}: {p}" for p in err.problems]) from None
    return merged


_MESSAGES = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "extra_forbidden": "unknown key",
    "missing": "required",
    "int_parsing": "must be an integer",
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "model_type": "must be a table",
    "dict_type": "must be a table",
    "list_type": "must be a list",
}


def _format_error(source: str, error: Any) -> str:
    loc = [str(p) for p in error["loc"] if not str(p).startswith(("function-", "list["))]
    path = ".".join(p for p in loc if p not in {"int", "float", "str", "bool"}) or "(top)"
    template = _MESSAGES.get(error["type"])
    ctx = error.get("ctx") or {}
    if template is not None:
        msg = template.format(**ctx)
    elif error["type"] == "literal_error":
        msg = f"must be one of {ctx.get('expected', '')}"
    else:
        msg = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] not in {"extra_forbidden", "missing"} and "input" in error:
        got = error["input"]
        if not isinstance(got, (dict, list)):
            msg += f" (got {json.dumps(got) if isinstance(got, str) else got})"
    return f"{source}: {path}: {msg}"


def validate_spec(raw: Mapping[str, Any], source: str) -> Spec:
    """Raw dict → frozen Spec, or a SpecError with one line per problem."""
    try:
        spec = Spec.model_validate(dict(raw))
    except ValidationError as err:
        lines = list(dict.fromkeys(_format_error(source, e) for e in err.errors()))
        raise SpecError(lines) from None
    problems = spec.semantic_problems()
    if problems:
        raise SpecError([f"{source}: {path}: {msg}" for path, msg in problems])
    return spec


def load_spec(text: str, source: str, overrides: Iterable[str] = (),
              default_name: str | None = None) -> Spec:
    """Text of a spec file plus ``--set`` overrides → validated Spec."""
    raw = parse_spec_text(text, source)
    if "name" not in raw and default_name:
        raw["name"] = default_name
    return validate_spec(apply_overrides(raw, overrides), source)


# ---------------------------------------------------------------- output forms


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    """The resolved spec as plain data, without unset (None) fields: TOML can hold it."""
    return spec.model_dump(mode="json", exclude_none=True)


def spec_to_toml(spec: Spec) -> str:
    import tomli_w

    return tomli_w.dumps(spec_to_dict(spec))


def spec_hash(spec: Spec) -> str:
    """Short content hash of the resolved spec: equal specs, equal hash."""
    blob = json.dumps(spec_to_dict(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables → ``{"a.b.c": value}``; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out
