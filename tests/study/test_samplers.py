"""`grokexp optimize` with each sampler the spec offers and with the median pruner, run for real.

A sampler leaves no name in an Optuna storage, so each test shows which sampler chose the
trials by replaying the study: a fresh in-memory study with the sampler built here from
Optuna's own classes, seeded with the seed grokexp gave its worker (read with a spy that passes
everything through), asked in the same batches and told the same values, must propose exactly
the points the study holds; a sampler of another kind, same seed, must not. The first
``n_startup_trials`` points are Optuna's random start (RandomSampler of that seed) whatever the
sampler, so the kinds part only after them.
"""

from __future__ import annotations

import warnings

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optimize_helpers import load, optimize
from optuna.trial import TrialState

import grokexp.study.optimize as optimize_module

# a + b mod 17 as in optimize_helpers.OPT_TINY, cut short: 150 epochs, scored by the epoch
# the test accuracy reaches 0.3, so that trials score differently: values for the samplers
# to model
SPEC = """
name = "opt"
[task]
modulus = 17
train_fraction = 0.8
[model]
embedding_dim = 24
hidden = 48
[train]
epochs = 150
lr = 1e-2
batch_size = 64
stop_after_generalized = 0
[metrics]
every = 5
grok_threshold = 0.3
mc_dropout = false
checkpoints = 0
[optimize]
sampler = "{sampler}"
objective = "test_grok_epoch"
n_trials = 4
batch = 2
seeds = 1
n_startup_trials = 2
[optimize.space]
"init.embedding.shift" = {{low = 0.0, high = 1.0}}
"train.weight_decay" = {{low = 0.3, high = 3.0, log = true}}
"""
STARTUP = 2


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def worker_seeds(monkeypatch) -> list[int]:
    """The seed each ``make_sampler`` call got: a spy, the real sampler is returned."""
    seeds: list[int] = []
    real = optimize_module.make_sampler

    def spy(opt, seed):
        seeds.append(seed)
        return real(opt, seed)

    monkeypatch.setattr(optimize_module, "make_sampler", spy)
    return seeds




def suggest(trial: optuna.Trial) -> dict[str, float]:
    """The space of SPEC, asked in its order."""
    return {"init.embedding.shift": trial.suggest_float("init.embedding.shift", 0.0, 1.0),
            "train.weight_decay": trial.suggest_float("train.weight_decay", 0.3, 3.0,
                                                      log=True)}


def replay(sampler: optuna.samplers.BaseSampler, trials: list, batch: int) -> list[dict]:
    """The points ``sampler`` proposes when asked in batches and told the study's values."""
    study = optuna.create_study(sampler=sampler, direction="minimize")
    points = []
    for start in range(0, len(trials), batch):
        asked = []
        for _ in trials[start:start + batch]:
            trial = study.ask()
            points.append(suggest(trial))
            asked.append(trial)
        for trial, done in zip(asked, trials[start:start + batch], strict=True):
            study.tell(trial, done.value)
    return points


def samplers(seed: int) -> dict[str, optuna.samplers.BaseSampler]:
    """Each kind the spec can ask for, built from Optuna's classes as the README names them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return {
            "tpe": optuna.samplers.TPESampler(multivariate=True, constant_liar=True, seed=seed,
                                              n_startup_trials=STARTUP),
            "gp": optuna.samplers.GPSampler(seed=seed, n_startup_trials=STARTUP),
            "random": optuna.samplers.RandomSampler(seed=seed),
        }


def run_study(kind: str, storage: str, write_spec, tracking_uri, tmp_path,
              worker_seeds) -> tuple[list, int]:
    spec = write_spec(SPEC.format(sampler=kind), "opt.toml")
    result = optimize(spec, "--storage", storage, "--tracking-uri", tracking_uri,
                      "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    trials = load(storage).get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len(worker_seeds) == 1  # one worker, one sampler
    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name("opt")
    (parent,) = client.search_runs([exp.experiment_id], "tags.`grokexp.role` = 'study'")
    assert parent.data.tags["optuna.sampler"] == kind
    return trials, worker_seeds[0]


@pytest.mark.parametrize(("kind", "storage"), [("gp", "journal"), ("random", "sqlite")])
def test_the_spec_s_sampler_proposes_the_study_s_points(kind, storage, write_spec,
                                                        tracking_uri, tmp_path, worker_seeds):
    where = (str(tmp_path / "study.log") if storage == "journal"
             else f"sqlite:///{tmp_path / 'study.db'}")
    trials, seed = run_study(kind, where, write_spec, tracking_uri, tmp_path, worker_seeds)
    held = [t.params for t in trials]
    proposed = {name: replay(sampler, trials, batch=2) for name, sampler in
                samplers(seed).items()}
    assert proposed[kind] == held
    for other, points in proposed.items():
        assert points[:STARTUP] == held[:STARTUP]  # the same random start
        if other != kind:  # after it each kind proposes its own points
            assert all(p != h for p, h in zip(points[STARTUP:], held[STARTUP:], strict=True)), (
                other, points, held)


MEDIAN = """
name = "opt"
[task]
modulus = 17
train_fraction = 0.8
[model]
embedding_dim = 24
hidden = 48
[train]
epochs = 250
lr = 1e-2
batch_size = 64
stop_after_generalized = 0
[metrics]
every = 10
mc_dropout = false
checkpoints = 0
[optimize]
n_trials = 3
batch = 1
seeds = 1
n_startup_trials = 2
pruner = "median"
[optimize.space]
"train.lr" = {low = 1e-5, high = 1e-2, log = true}
# the paper's setting first: it generalises within 250 epochs (optimize_helpers.OPT_TINY);
# then two learning rates far too small to leave chance accuracy in that time
[[optimize.enqueue]]
"train.lr" = 1e-2
[[optimize.enqueue]]
"train.lr" = 1e-5
[[optimize.enqueue]]
"train.lr" = 2e-5
"""


def test_median_pruner_prunes_trials_worse_than_the_median_at_the_same_epoch(
        write_spec, tracking_uri, tmp_path):
    spec = write_spec(MEDIAN, "median.toml")
    storage = str(tmp_path / "median.log")
    result = optimize(spec, "--storage", storage, "--tracking-uri", tracking_uri,
                      "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    good, *slow = load(storage).get_trials()
    assert good.params == {"train.lr": 1e-2} and good.state == TrialState.COMPLETE
    assert good.user_attrs["censored"] is False
    assert [t.params["train.lr"] for t in slow] == [1e-5, 2e-5]
    client = MlflowClient(tracking_uri=tracking_uri)
    for trial in slow:
        assert trial.state == TrialState.PRUNED, trial
        # Optuna's median rule written out: a trial is pruned at the first evaluation where
        # its best value so far (1 − test accuracy, lower is better) is worse than the median
        # of the completed trials' values at that epoch (here: the one completed trial's)
        steps = sorted(trial.intermediate_values)
        last = steps[-1]
        assert last < 250  # stopped early
        for step in steps:
            best = min(trial.intermediate_values[s] for s in steps if s <= step)
            assert (best > good.intermediate_values[step]) == (step == last), (step, trial)
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.info.status == "KILLED"
        assert max(m.step for m in client.get_metric_history(run.info.run_id,
                                                             "test_acc")) == last
