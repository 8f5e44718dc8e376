"""The rules every claim's measure shares (claim_measures.py), and what a measure returns.

Grok epochs, the rise and onsets are ``grokexp.grokking``'s, at each member's own
``metrics.grok_threshold`` (the series carries it).

- **Censored seeds.** A seed whose test accuracy has no grok epoch within its budget
  (``grokking.censored``) has its test grok epoch and its grokking delay beyond the budget:
  ``grok_epoch``/``grokking_delay`` return ``CENSORED`` (infinity) for them, so a censored
  seed is later than every measured one in every comparison. It is never dropped: it counts
  as delayed where the claim is a delay (Figs. 9, 10, ReLU), as not shorter where the claim is
  a shorter delay (Fig. 9), and it cannot show a property of a grokking that happened after
  its run ended (Figs. 1, 2, 3: flag False). ``is_censored`` is what the table counts.
- **The test rise** (``rise_window``): from the onset of the test accuracy
  (``grokking.onset``: half its smoothed change from its first to its last value) to its grok
  epoch.
- **Against a baseline**, a seed is compared with the *median* of the baseline seeds
  (``seeds_median``: the upper median, always one seed's value, censored seeds included as
  beyond the budget), never with the best or worst seed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import grokking
from ..series import MemberSnapshots

__all__ = ["Members", "Measured", "CENSORED", "grok_epoch", "grokking_delay", "is_censored",
           "last_epoch", "column", "final", "seeds_median", "rise_window", "cases"]

Members = Mapping[str, Sequence[tuple[Mapping[str, Any], MemberSnapshots]]]
CENSORED = math.inf  # the grok epoch / delay of a seed that did not get there in its budget


@dataclass
class Measured:
    """What a measure found: named numbers, one flag per seed (True: the claim held there),
    and, when the runs cannot answer the claim, why (then there are no flags)."""

    flags: list[bool] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    problem: str = ""


# --- shared rules --------------------------------------------------------------------------------

def grok_epoch(record: MemberSnapshots, name: str = "test_acc") -> float:
    """The member's test grok epoch (``CENSORED`` for a censored seed), or with ``name =
    "train_acc"`` its train grok epoch (``CENSORED`` if it was not reached)."""
    s = record.series
    if name == "test_acc":
        epoch = None if is_censored(record) else s.test_grok_epoch
    else:
        epoch = s.train_grok_epoch
    return CENSORED if epoch is None else float(epoch)


def grokking_delay(record: MemberSnapshots) -> float:
    """Test grok epoch − train grok epoch; ``CENSORED`` when either was not reached."""
    train, test = grok_epoch(record, "train_acc"), grok_epoch(record, "test_acc")
    return CENSORED if math.isinf(train) or math.isinf(test) else test - train


def is_censored(record: MemberSnapshots) -> bool:
    """The seed's test accuracy did not reach its grok threshold within its budget."""
    return grokking.censored(record.series.test_grok_epoch, record.series.budget)


def last_epoch(record: MemberSnapshots) -> int | None:
    """The last evaluated epoch of the test accuracy (a censored seed's is its budget)."""
    epochs = record.series.epochs_of("test_acc")
    return epochs[-1] if epochs else None


def column(record: MemberSnapshots, name: str) -> tuple[list[int], list[float]]:
    """(epochs, values) of one of the member's columns; empty lists if it has none."""
    return record.series.columns.get(name, ([], []))


def final(record: MemberSnapshots, name: str) -> float | None:
    """The last value of a column, or None."""
    return record.series.final(name)


def seeds_median(values: Sequence[float]) -> float:
    """The upper median over seeds (censored ones as ``CENSORED``): always one seed's value."""
    return statistics.median_high(values) if values else CENSORED


def rise_window(record: MemberSnapshots) -> tuple[int, int] | None:
    """(onset, grok epoch) of the test accuracy; None for a censored seed or no onset."""
    grok = grok_epoch(record, "test_acc")
    if math.isinf(grok):
        return None
    start = grokking.onset(record.series.epochs_of("test_acc"), record.series.values("test_acc"))
    # A jump within an evaluation or two puts the smoothed onset past the grok epoch: the
    # rise is then that one step, and it starts no later than it ends.
    return None if start is None else (min(start, int(grok)), int(grok))


def _seed(varied: Mapping[str, Any], position: int) -> Any:
    return varied.get("train.seed", position)


def cases(group: Iterable[tuple[Mapping[str, Any], MemberSnapshots]], key: str
          ) -> list[tuple[Any, dict[Any, MemberSnapshots]]] | None:
    """Members grouped by the value of ``key`` (first-seen order), each case by seed.

    None when a member does not vary ``key`` (the runs come from another spec).
    """
    found: dict[str, tuple[Any, dict[Any, MemberSnapshots]]] = {}
    for varied, record in group:
        if key not in varied:
            return None
        value = varied[key]
        case = found.setdefault(repr(value), (value, {}))
        case[1][_seed(varied, len(case[1]))] = record
    return list(found.values())
