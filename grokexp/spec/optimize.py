"""The ``[optimize]`` section: an Optuna search space over dotted spec keys, and its rules.

Which dotted keys exist is the whole spec's business (schema.py), so ``problems`` is handed
that check rather than importing the spec that holds this section.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from .base import FIELD_MESSAGES, Section, flatten

__all__ = ["OptimizeSpec", "SearchDim", "MAX_SEEDS"]

MAX_SEEDS = 10_000  # seeds per trial: beyond this a typo, not a study (each is a member)


class SearchDim(Section):
    """One dimension of an Optuna search space: ``{low, high, log, step}`` or ``{choices}``.

    Integer bounds (both written as integers) make an integer dimension; anything else with
    ``low``/``high`` is a float dimension; ``choices`` is categorical.
    """

    low: int | float | None = None
    """Lower bound (integers on both bounds: an integer dimension)."""
    high: int | float | None = None
    """Upper bound."""
    log: bool = False
    """Sample on a log scale."""
    step: int | float | None = Field(None, gt=0)
    """Grid step between low and high."""
    choices: list[int | float | str | bool] | None = Field(None, min_length=1)
    """A categorical dimension's values (instead of low/high)."""

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


class OptimizeSpec(Section):
    """``[optimize]``: an Optuna study over dotted spec keys that minimises grokking delay.

    Each trial trains its point with ``seeds`` seeds; the objective is the upper median over
    them. A seed that never generalises within ``train.epochs`` is censored and scores
    ``censor_penalty × train.epochs``, more than any real delay or grok epoch can be.
    """

    space: dict[str, Any]
    """Dotted spec keys to search dimensions ({low, high, log, step} or {choices})."""
    seeds: int | list[int] = 3
    """Seeds per trial: a count, or the list of seeds; the objective is their upper median."""
    objective: Literal["grokking_delay", "test_grok_epoch"] = "grokking_delay"
    """What is minimised."""
    sampler: Literal["tpe", "gp", "random"] = "tpe"
    """Optuna's sampler: TPE (multivariate, constant liar), GP or random."""
    seed: int = Field(0, ge=0, le=2**63 - 1)
    """The sampler's seed, mixed with a per-worker id."""
    n_startup_trials: int = Field(8, ge=0)
    """Random trials before the sampler models the space."""
    pruner: Literal["none", "median", "threshold", "forecast"] = "none"
    """Stop unpromising trials early: median, threshold, forecast, or none."""
    prune_warmup: int = Field(0, ge=0)
    """Epochs before the pruner may act."""
    prune_min_test_acc: float = Field(0.5, ge=0.0, le=1.0)
    """The threshold pruner's test accuracy needed from prune_warmup on."""
    n_trials: int = Field(32, ge=0, le=1_000_000)
    """The study's total number of trials, shared by all workers."""
    batch: int = Field(4, ge=1, le=100_000)
    """Trials asked at once and trained as one population."""
    enqueue: list[dict[str, Any]] = Field(default_factory=list)
    """Known points (tables of dotted keys) tried first."""
    censor_penalty: float = Field(2.0, gt=1.0)
    """Score of a seed that never generalises, in units of train.epochs."""
    heartbeat_s: float = Field(10.0, gt=0.0)
    """How often a worker marks its running trials alive (seconds)."""
    grace_s: float = Field(60.0, gt=0.0)
    """A running trial silent this long belongs to a dead worker and is re-queued."""

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
        if isinstance(value, int) and not 1 <= value <= MAX_SEEDS:
            raise ValueError(f"must be between 1 and {MAX_SEEDS}")
        if isinstance(value, list) and len(value) > MAX_SEEDS:
            raise ValueError(f"must hold at most {MAX_SEEDS} seeds (got {len(value)})")
        if isinstance(value, list) and (not value or len(set(value)) != len(value)
                                        or any(s < 0 for s in value)):
            raise ValueError("must be a non-empty list of distinct non-negative integers")
        return value

    def dims(self) -> dict[str, SearchDim]:
        """The space as validated dimensions (call after ``problems()`` is empty)."""
        return {key: SearchDim.model_validate(value) for key, value in self.space.items()}

    def problems(self, known_path: Callable[[str], bool]) -> list[tuple[str, str]]:
        """(path, message) pairs; ``known_path`` says whether a dotted key names a spec field."""
        out: list[tuple[str, str]] = []
        for key, value in self.space.items():
            where = f"optimize.space.{key}"
            if not known_path(key):
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
                         FIELD_MESSAGES.get(e["type"], str(e["msg"]))) for e in err.errors()]
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
