"""A study's search space: its points as specs, each trial's seeds, and the budget.

A point of the space is the base spec with the point's dotted keys set (no ``[optimize]``, no
``[sweep]``); every bound and choice of the space is checked to make a valid spec before the
study is created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import SpecError
from ..spec.architectures import leave_architecture
from ..spec.io import set_dotted, spec_to_dict, validate_spec
from ..spec.optimize import SearchDim
from ..spec.schema import Spec
from ..spec.task import leave_modulus

if TYPE_CHECKING:
    import optuna

__all__ = ["point_spec", "trial_seeds", "suggest", "check_space", "budget_epochs"]


def point_spec(base: Spec, params: dict[str, Any], source: str,
               seed: int | None = None) -> Spec:
    """The base spec at one point of the space (no ``[optimize]``, no ``[sweep]``)."""
    raw = spec_to_dict(base)
    raw.pop("optimize", None)
    raw.pop("sweep", None)
    for key, value in params.items():
        set_dotted(raw, key, value)
    leave_architecture(raw, base.model.architecture, params)
    leave_modulus(raw, params)
    if seed is not None:
        raw["train"]["seed"] = seed
    return validate_spec(raw, source)


def trial_seeds(spec: Spec) -> list[int]:
    """``seeds = n`` means train.seed, train.seed + 1, …; a list is taken as it is."""
    assert spec.optimize is not None
    seeds = spec.optimize.seeds
    return list(seeds) if isinstance(seeds, list) else [spec.train.seed + i
                                                        for i in range(seeds)]


def suggest(trial: optuna.Trial, key: str, dim: SearchDim) -> Any:
    if dim.choices is not None:
        return trial.suggest_categorical(key, dim.choices)
    assert dim.low is not None and dim.high is not None
    if dim.is_int:
        return trial.suggest_int(key, int(dim.low), int(dim.high), step=int(dim.step or 1),
                                 log=dim.log)
    return trial.suggest_float(key, float(dim.low), float(dim.high), step=dim.step, log=dim.log)


def check_space(spec: Spec, source: str) -> None:
    """Every bound and choice of the space must make a valid spec; else exit-2 lines.

    Where ``model.architecture`` is a dimension, every other bound and choice is checked under
    each of its architectures (a key one of them lacks would fail at that trial)."""
    assert spec.optimize is not None
    problems: list[str] = []
    dims = spec.optimize.dims()
    arch_dim = dims.get("model.architecture")
    architectures = [{}] if arch_dim is None or arch_dim.choices is None else [
        {"model.architecture": name} for name in arch_dim.choices]
    for key, dim in dims.items():
        values = dim.choices if dim.choices is not None else [dim.low, dim.high]
        for value in values:
            for arch in [{}] if key == "model.architecture" else architectures:
                try:
                    point_spec(spec, {**arch, key: value}, source)
                except SpecError as err:
                    under = "".join(f" with {k} = {v!r}" for k, v in arch.items())
                    problems += [p.replace(f"{source}: ", f"{source}: optimize.space.{key}: "
                                           f"{value!r}{under} gives ", 1)
                                 for p in err.problems]
    if problems:
        raise SpecError(list(dict.fromkeys(problems)))


def budget_epochs(spec: Spec) -> int:
    """The most epochs any trial may train: the censor penalty is a multiple of it."""
    assert spec.optimize is not None
    dim = spec.optimize.dims().get("train.epochs")
    if dim is None:
        return spec.train.epochs
    bounds = dim.choices if dim.choices is not None else [dim.high]
    return max(int(b) for b in [spec.train.epochs, *bounds] if isinstance(b, (int, float)))
