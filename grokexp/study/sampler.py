"""The sampler and the pruner of a study, as the spec's ``[optimize]`` chooses them.

Each worker seeds its own sampler (optimize.py mixes the spec's seed with the worker's id), so
that workers started together do not propose the same points.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from ..spec.optimize import OptimizeSpec

if TYPE_CHECKING:
    import optuna

__all__ = ["make_sampler", "make_pruner"]


def make_sampler(opt: OptimizeSpec, seed: int) -> optuna.samplers.BaseSampler:
    """TPE (multivariate, constant liar), GP or random, seeded for this worker."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if opt.sampler == "gp":
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=opt.n_startup_trials)
        if opt.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(multivariate=True, constant_liar=True, seed=seed,
                                          n_startup_trials=opt.n_startup_trials)


def make_pruner(opt: OptimizeSpec) -> optuna.pruners.BasePruner:
    """Reported value: 1 − test accuracy (median over the trial's seeds) at an evaluation.

    ``forecast`` needs the seeds' histories, which only the batch's hook holds: it decides
    there (``batch.StudyHook``), and Optuna's own pruner does nothing.
    """
    import optuna

    if opt.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=max(1, opt.n_startup_trials // 2),
                                           n_warmup_steps=opt.prune_warmup)
    if opt.pruner == "threshold":
        return optuna.pruners.ThresholdPruner(upper=1.0 - opt.prune_min_test_acc,
                                              n_warmup_steps=opt.prune_warmup)
    return optuna.pruners.NopPruner()
