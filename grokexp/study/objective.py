"""A trial's objective from its seeds' histories: pure functions, no Optuna, no MLflow.

Censoring: a seed that never reaches the grok threshold on the test set within its epoch
budget (``grokexp.grokking.censored``), or that fails, has no delay. It is scored
``censor_penalty × epochs``, which is larger than any real grokking delay or test grok epoch
(both are at most ``epochs``), and counted as censored; it is never reported as a measured
number. The objective is the *upper* median of
the seeds' scores, so it is always one seed's score: a real delay, or the penalty (then the
trial is ``censored``). With an odd number of seeds that is the median; with an even number
the worse middle score, so a trial counts as generalising only when more than half its seeds
do (two seeds: both).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from ..grokking import censored
from ..series import MemberSeries

__all__ = ["TrialOutcome", "seed_score", "trial_outcome", "censor_value"]


def censor_value(epochs: int, censor_penalty: float) -> float:
    """The finite score of a censored seed: more than any real delay can be."""
    return float(censor_penalty * epochs)


def seed_score(history: MemberSeries, objective: str) -> float | None:
    """The seed's grokking delay (or test grok epoch); None when censored (or failed)."""
    if history.status == "FAILED" or censored(history.test_grok_epoch, history.budget):
        return None
    value = history.grokking_delay if objective == "grokking_delay" else history.test_grok_epoch
    return None if value is None else float(value)


@dataclass(frozen=True)
class TrialOutcome:
    """What is told to Optuna and recorded for one trial."""

    value: float
    censored: bool
    seed_scores: list[float | None]
    censored_seeds: int
    spread: float | None

    def user_attrs(self) -> dict[str, object]:
        return {"censored": self.censored, "censored_seeds": self.censored_seeds,
                "seed_scores": self.seed_scores, "spread": self.spread}


def trial_outcome(histories: Sequence[MemberSeries], objective: str, epochs: int,
                  censor_penalty: float) -> TrialOutcome:
    """Upper median over seeds of their scores, censored seeds scored with the penalty.

    ``spread`` is max − min over the seeds that were not censored (None with fewer than two).
    """
    if not histories:
        raise ValueError("a trial needs at least one seed")
    penalty = censor_value(epochs, censor_penalty)
    scores = [seed_score(h, objective) for h in histories]
    value = statistics.median_high([penalty if s is None else s for s in scores])
    real = [s for s in scores if s is not None]
    spread = max(real) - min(real) if len(real) >= 2 else None
    return TrialOutcome(value=value, censored=value == penalty and None in scores,
                        seed_scores=scores, censored_seeds=sum(s is None for s in scores),
                        spread=spread)
