"""The forecast pruner in a real study (sqlite storage): frozen embeddings are stopped, a
trial that groks is kept, and the forecast is a user attr, never the objective."""

from __future__ import annotations

import optuna
from mlflow.tracking import MlflowClient
from optimize_helpers import OPT_TINY, optimize
from optuna.trial import TrialState

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
    # reported 1 − test accuracy
    last = frozen.intermediate_values[max(frozen.intermediate_values)]
    assert frozen.value == last and frozen.value != forecast
    assert forecast == "never" or forecast > 250
    assert 50 <= frozen.user_attrs["forecast_epoch"] < 250  # stopped well before the budget
    assert max(frozen.intermediate_values) == frozen.user_attrs["forecast_epoch"]
    assert frozen.user_attrs["forecast_target_level"] == 0.8  # the prior: nothing completed
    assert trained.state == TrialState.COMPLETE and trained.user_attrs["censored"] is False
    assert "forecast_test_grok_epoch" not in trained.user_attrs
    assert 0.0 < trained.user_attrs["forecast_level"] <= 1.0  # calibrates later trials
    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(frozen.user_attrs["mlflow_run_id"])
    assert run.data.tags["optuna.state"] == "PRUNED"
    structure = client.get_metric_history(run.info.run_id, "embedding_cos_structure")
    assert len({m.value for m in structure}) == 1  # frozen: the structure never moves
