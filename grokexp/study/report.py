"""What a study leaves behind: the best trials as a table, ``best.toml``, and its figures."""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Any

from ..figures.study import history_figure, importance_figure, space_figure
from ..spec.io import spec_to_dict, validate_spec
from ..spec.schema import Spec
from ..tracking.logged_model import SEED_WEIGHTS
from ..tracking.tracker import Tracker
from .batch import budget_epochs, point_spec, trial_seeds

if TYPE_CHECKING:
    import optuna
    from matplotlib.figure import Figure

__all__ = ["completed", "ranked", "best_rows", "format_table", "best_spec", "study_figures",
           "log_best_networks"]


def completed(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None]


def ranked(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Completed trials best first: every trial that generalised before any censored one,
    then the lowest objective, then the lowest number (the same order on every storage)."""
    return sorted(completed(study), key=lambda t: (bool(t.user_attrs.get("censored")),
                                                   float(t.value), t.number))  # type: ignore[arg-type]


def best_rows(study: optuna.Study, k: int = 5) -> list[dict[str, Any]]:
    """The k best completed trials (lowest objective first, censored ones last)."""
    return [{"number": t.number, "value": t.value, "censored": bool(t.user_attrs.get("censored")),
             "spread": t.user_attrs.get("spread"), "seed_scores": t.user_attrs.get("seed_scores"),
             "params": dict(t.params)} for t in ranked(study)[:k]]


def format_table(rows: list[dict[str, Any]], objective: str) -> str:
    """A Markdown table (readable as plain text too). A censored trial's objective reads
    'censored': its penalty is what the sampler was told, not a measured delay."""
    keys = list(rows[0]["params"]) if rows else []
    head = ["trial", objective, "censored", "spread", "per seed", *keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        seeds = ", ".join("-" if s is None else f"{s:g}" for s in row["seed_scores"] or [])
        spread = "-" if row["spread"] is None else f"{row['spread']:g}"
        value = "censored" if row["censored"] else f"{row['value']:g}"
        cells = [str(row["number"]), value, str(row["censored"]).lower(), spread,
                 seeds, *(_show(row["params"][k]) for k in keys)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _show(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def best_spec(spec: Spec, trial: optuna.trial.FrozenTrial, study_name: str,
              source: str) -> Spec:
    """A complete, plain spec that ``grokexp run`` trains into the best trial's seeds.

    When even the best trial is censored, the description says that no trial generalised
    within the budget, and gives no number for it."""
    point = point_spec(spec, dict(trial.params), source)
    raw = spec_to_dict(point)
    raw["name"] = f"{spec.name}-best"
    objective = spec.optimize.objective if spec.optimize else "objective"
    if trial.user_attrs.get("censored"):
        raw["description"] = (
            f"No trial of study '{study_name}' generalised within the budget of "
            f"{budget_epochs(spec)} epochs: every trial is censored (at least half its seeds "
            f"have no {objective}). This is trial {trial.number}'s point, not a measured best.")
    else:
        raw["description"] = (f"Best trial {trial.number} of study '{study_name}': "
                              f"{objective} {trial.value:g} (upper median over seeds).")
    raw["sweep"] = {"seeds": trial_seeds(spec)}
    raw.setdefault("tracking", {})["experiment"] = spec.experiment_name
    return validate_spec(raw, source)


def _pick_axes(keys: list[str]) -> tuple[str, str] | None:
    """Shift and weight decay when searched, else the first two parameters."""
    shift = next((k for k in keys if k.endswith("shift")), None)
    decay = next((k for k in keys if k.endswith("weight_decay")), None)
    if shift and decay:
        return shift, decay
    return (keys[0], keys[1]) if len(keys) >= 2 else None


def study_figures(study: optuna.Study, spec: Spec) -> dict[str, Figure]:
    """History, importances (when they can be computed) and the objective over two axes."""
    import optuna

    assert spec.optimize is not None
    trials = completed(study)
    if not trials:
        return {}
    numbers = [t.number for t in trials]
    values = [float(t.value) for t in trials]  # type: ignore[arg-type]
    censored = [bool(t.user_attrs.get("censored")) for t in trials]
    objective = spec.optimize.objective
    figures = {"figures/optimization_history.png":
               history_figure(numbers, values, censored, objective, study.study_name)}
    if len(trials) >= 3 and len(set(values)) > 1:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                importances = optuna.importance.get_param_importances(study)
            figures["figures/param_importances.png"] = importance_figure(importances)
        except (RuntimeError, ValueError) as err:  # the logger's name from before the layout
            logging.getLogger("grokexp.study_report").info("no parameter importances: %s", err)
    dims = spec.optimize.dims()
    axes = _pick_axes([k for k, d in dims.items() if d.choices is None])
    if axes is not None:
        x, y = axes
        keep = [t for t in trials if x in t.params and y in t.params]
        figures["figures/objective_space.png"] = space_figure(
            [t.params[x] for t in keep], [t.params[y] for t in keep],
            [float(t.value) for t in keep],  # type: ignore[arg-type]
            [bool(t.user_attrs.get("censored")) for t in keep], x, y,
            ylog=dims[y].log, xlog=dims[x].log, title=f"{objective} over ({x}, {y})")
    return figures


def log_best_networks(spec: Spec, trial: optuna.trial.FrozenTrial, chosen: Spec,
                      tracker: Tracker) -> int:
    """The best trial's network of each seed as a LoggedModel of the trial's run, from the
    final weights its seeds left there (``SEED_WEIGHTS``); how many were logged. Trials log
    none themselves; ``[tracking] log_model = false`` logs none here either."""
    from ..engine.arch import architecture_of
    from ..engine.data import pair_table
    from ..run.hooks import EXAMPLE_PAIRS

    run_id = trial.user_attrs.get("mlflow_run_id")
    if not spec.tracking.log_model or not run_id:
        return 0
    arch = architecture_of(chosen)
    example = pair_table(chosen.task).pairs[:EXAMPLE_PAIRS]
    logged = 0
    for seed in trial_seeds(spec):
        state = tracker.load_state(run_id, SEED_WEIGHTS.format(seed=seed))
        if state is None:
            continue
        try:
            tracker.log_model(run_id, arch.twin(state), example, kind=arch)
            logged += 1
        except Exception as err:  # the study's result stands without it
            logging.getLogger("grokexp.study_report").warning(
                "trial %d's network (seed %d) not logged: %s", trial.number, seed, err)
    return logged
