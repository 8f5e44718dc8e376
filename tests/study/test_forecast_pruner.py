"""The forecast pruner in a real study (sqlite storage): frozen embeddings are stopped, a
trial that groks is kept, and the forecast is a user attr, never the objective; the "clearly
worse" rule against a completed best trial, and the rule of consecutive evaluations."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import optuna
from mlflow.tracking import MlflowClient
from optimize_helpers import OPT_TINY, optimize
from optuna.trial import TrialState

from grokexp.engine.train import MemberSeries
from grokexp.forecast.predict import PRUNE_INDICATOR, PRUNE_PATIENCE
from grokexp.spec.optimize import OptimizeSpec
from grokexp.study.hook import StudyHook, TrialRun

# One seed per point; the space only says whether the embedding trains: frozen, the tiny
# model cannot generalise (its cosine structure cannot move), trained it groks by epoch 250.
SPEC = (OPT_TINY.replace("seeds = 2", "seeds = 1").replace("n_trials = 4", "n_trials = 2")
        .replace("batch = 4", "batch = 2")
        .replace('''[optimize.space]
"init.embedding.shift" = {low = 0.0, high = 1.0}
"train.weight_decay" = {low = 0.3, high = 3.0, log = true}
[[optimize.enqueue]]
"init.embedding.shift" = 0.0
"train.weight_decay" = 1.0''', '''pruner = "forecast"
prune_warmup = 50
[optimize.space]
"init.embedding.trainable" = {choices = [true, false]}
[[optimize.enqueue]]
"init.embedding.trainable" = true
[[optimize.enqueue]]
"init.embedding.trainable" = false'''))


def test_frozen_embeddings_are_pruned_and_a_grokking_trial_is_kept(write_spec, tracking_uri,
                                                                     tmp_path):
    assert 'pruner = "forecast"' in SPEC and "trainable" in SPEC
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    result = optimize(write_spec(SPEC, "opt.toml"), "--tracking-uri", tracking_uri,
                      "--storage", storage, "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="opt", storage=storage)
    by_point = {t.params["init.embedding.trainable"]: t for t in study.get_trials()}
    frozen, trained = by_point[False], by_point[True]
    assert frozen.state == TrialState.PRUNED
    forecast = frozen.user_attrs["forecast_test_grok_epoch"]
    # the forecast is never the objective: a pruned trial's value is Optuna's, its last
    # reported 1 − test accuracy, in [0, 1] (a forecast epoch is > 250, or "never")
    last = frozen.intermediate_values[max(frozen.intermediate_values)]
    assert frozen.value == last and 0.0 <= frozen.value <= 1.0
    assert forecast == "never" or forecast > 250
    assert 50 <= frozen.user_attrs["forecast_epoch"] < 250  # stopped well before the budget
    assert max(frozen.intermediate_values) == frozen.user_attrs["forecast_epoch"]
    # the rule fired at PRUNE_PATIENCE evaluations in a row (every 10 epochs) before it stopped
    assert (frozen.user_attrs["forecast_epoch"] - frozen.user_attrs["forecast_first_epoch"]
            == 10 * (PRUNE_PATIENCE - 1))
    assert frozen.user_attrs["forecast_target_level"] == 0.8  # the prior: nothing completed
    assert trained.state == TrialState.COMPLETE and trained.user_attrs["censored"] is False
    assert "forecast_test_grok_epoch" not in trained.user_attrs
    assert 0.0 < trained.user_attrs["forecast_level"] <= 1.0  # calibrates later trials
    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(frozen.user_attrs["mlflow_run_id"])
    assert run.data.tags["optuna.state"] == "PRUNED"
    structure = client.get_metric_history(run.info.run_id, "embedding_cos_structure")
    assert len({m.value for m in structure}) == 1  # frozen: the structure never moves


def _seed(epochs: np.ndarray, slope: float, memorised: int | None) -> MemberSeries:
    """A seed whose structure rises at ``slope`` per epoch from 0; test accuracy 0.1."""
    seed = MemberSeries(0, train_grok_epoch=memorised)
    for epoch in epochs.tolist():
        seed.record(epoch, {PRUNE_INDICATOR: slope * epoch, "test_acc": 0.1})
    return seed


def _hook_and_slow_trial(tmp_path):
    """A real sqlite study whose one completed trial (delay 100) says: the structure is 0.5
    at the rise, the rise comes 20 epochs before the test grok epoch. Then a running trial."""
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 's.db'}")
    best = study.ask()
    for key, value in {"censored": False, "forecast_level": 0.5,
                       "forecast_rise_to_grok": 20.0}.items():
        best.set_user_attr(key, value)
    study.tell(best, 100.0)
    run = TrialRun(study.ask(), {}, "run", [])
    opt = OptimizeSpec(space={"train.weight_decay": {"low": 0.1, "high": 1.0}},
                       pruner="forecast", objective="grokking_delay")
    hook = StudyHook(study, opt, [run], None, None, 1000, lambda r: None)  # type: ignore[arg-type]
    return hook, run


def test_a_trial_clearly_slower_than_the_best_is_stopped_after_three_evaluations(tmp_path):
    """Structure 0.002 per epoch reaches 0.5 at epoch 250: forecast test grok 270, within the
    budget (1000); both seeds memorised at 20 and 30: delays 250 and 240, upper median 250 >
    1.5 × 100. A fast one (0.02 per epoch, past 0.5 already: forecast now + 20 = 130, delays
    110 and 100) is not."""
    hook, run = _hook_and_slow_trial(tmp_path)

    def evaluate(epoch: int, slope: float, memorised: tuple[int | None, int | None]):
        epochs = np.arange(0, epoch + 1, 10)
        ctx = SimpleNamespace(epoch=epoch, histories=[_seed(epochs, slope, m) for m in memorised])
        return hook._forecast_reason(ctx, run, [0, 1])  # type: ignore[arg-type]

    assert evaluate(90, 0.002, (20, 30)) is None  # fired once
    assert evaluate(100, 0.002, (20, 30)) is None  # twice
    assert evaluate(110, 0.02, (20, 30)) is None  # not this time: the count starts again
    assert evaluate(120, 0.002, (20, 30)) is None
    assert evaluate(130, 0.002, (20, 30)) is None
    reason = evaluate(140, 0.002, (20, 30))
    assert reason is not None and "> 1.5 × the best trial's 100" in reason
    attrs = run.trial.study.trials[run.trial.number].user_attrs
    assert abs(attrs["forecast_test_grok_epoch"] - 270) < 1e-6
    assert abs(attrs["forecast_objective"] - 250) < 1e-6
    assert attrs["forecast_first_epoch"] == 120 and attrs["forecast_epoch"] == 140
    assert attrs["forecast_target_level"] == 0.5 and attrs["forecast_rise_to_grok_used"] == 20


def test_the_clearly_worse_rule_waits_until_every_seed_has_memorised(tmp_path):
    hook, run = _hook_and_slow_trial(tmp_path)
    for epoch in range(90, 200, 10):  # seed 2 has not memorised: its delay is not known
        epochs = np.arange(0, epoch + 1, 10)
        ctx = SimpleNamespace(epoch=epoch, histories=[_seed(epochs, 0.002, 20),
                                                      _seed(epochs, 0.002, None)])
        assert hook._forecast_reason(ctx, run, [0, 1]) is None  # type: ignore[arg-type]
    assert "forecast_epoch" not in run.trial.study.trials[run.trial.number].user_attrs
