"""The largest population a study may train, checked against the memory limit first.

``grokexp optimize`` trains a batch of trials × their seeds as one population per shape, at
points the sampler has not chosen yet; so the check takes the worst the space allows: every
dimension at its most memory-hungry bound or choice, ``batch × seeds`` members of that one
shape. It runs before any store or study is created, like ``grokexp run``'s check.
"""

from __future__ import annotations

from ..errors import SpecError
from ..run.budget import check_population, estimate_bytes
from ..spec.schema import Spec
from .batch import point_spec, trial_seeds

__all__ = ["largest_points", "check_study_memory"]


def largest_points(spec: Spec, source: str) -> list[Spec]:
    """The space's most memory-hungry point: each dimension at the bound or choice that alone
    needs the most memory. When those values do not make a valid spec together, each alone
    (each of which the space's own check has validated)."""
    assert spec.optimize is not None
    picks = {}
    for key, dim in spec.optimize.dims().items():
        values = dim.choices if dim.choices is not None else [dim.low, dim.high]
        picks[key] = max(values, key=lambda v, key=key: estimate_bytes(
            point_spec(spec, {key: v}, source), 1))
    try:
        return [point_spec(spec, picks, source)]
    except SpecError:
        return [point_spec(spec, {key: value}, source) for key, value in picks.items()]


def check_study_memory(spec: Spec, source: str, batch: int, limit_bytes: int,
                       limit_source: str) -> None:
    """Refuse (exit 2, the line ``grokexp run`` prints) a study whose largest batch would not
    fit: ``batch`` trials × ``optimize.seeds`` members at :func:`largest_points`."""
    members = batch * len(trial_seeds(spec))
    for point in largest_points(spec, source):
        check_population(point, members, limit_bytes, limit_source)
