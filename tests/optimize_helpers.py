"""Shared pieces of the optimize tests: a spec that groks in a few hundred cheap epochs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# a + b mod 17 with 80% of pairs for training: at weight decay 1 the test accuracy passes
# 0.95 some 100-200 epochs after the training accuracy; at 0.3 or 3 it does not within 250.
OPT_TINY = """
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
[optimize]
n_trials = 4
batch = 4
seeds = 2
n_startup_trials = 2
[optimize.space]
"init.embedding.shift" = {low = 0.0, high = 1.0}
"train.weight_decay" = {low = 0.3, high = 3.0, log = true}
[[optimize.enqueue]]
"init.embedding.shift" = 0.0
"train.weight_decay" = 1.0
"""

REPO = Path(__file__).resolve().parents[1]


def optimize(*args: str):
    """``grokexp optimize --quiet ARGS`` through click's runner, in this process."""
    from click.testing import CliRunner

    from grokexp.cli import main

    return CliRunner().invoke(main, ["optimize", "--quiet", *args], catch_exceptions=False)


def worker(args: list[str], cwd: Path, **kwargs) -> subprocess.Popen:
    """``grokexp optimize …`` as a separate process (a worker of its own)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.setdefault("OMP_NUM_THREADS", "1")  # tiny models: threads only contend on 2 cores
    return subprocess.Popen([sys.executable, "-m", "grokexp", "optimize", *args, "--quiet"],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def load(storage: str, name: str = "opt"):
    import optuna

    from grokexp.study.storage import StorageTarget, open_storage

    kind = "journal" if storage.endswith(".log") else "rdb"
    return optuna.load_study(study_name=name, storage=open_storage(StorageTarget(kind, storage)))


def two_workers(spec: str, storage: str, tracking_uri: str, tmp_path: Path,
                n_trials: int = 6) -> dict:
    """Run two ``grokexp optimize`` processes on one study at once; check and return facts."""
    from optuna.trial import TrialState

    procs = [worker([spec, "--storage", storage, "--tracking-uri", tracking_uri,
                     "--n-trials", str(n_trials), "--batch", "2", "--study", "shared",
                     "--set", "train.epochs=30", "--out", str(tmp_path / f"w{i}")], tmp_path)
             for i in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-4000:]
    told = [{int(line.split()[1].rstrip(":")) for line in err.splitlines()
             if line.startswith("trial ") and " COMPLETE " in line} for _, err in outputs]
    study = load(storage, "shared")
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(trials)))  # no number lost or duplicated
    complete = {t.number for t in trials if t.state == TrialState.COMPLETE}
    assert len(complete) == n_trials
    assert told[0] & told[1] == set() and told[0] | told[1] == complete  # each done once
    others = [t for t in trials if t.state != TrialState.COMPLETE]
    assert all(t.state == TrialState.FAIL and t.user_attrs.get("surplus") for t in others)
    points = [tuple(sorted(t.params.items())) for t in trials if t.number in complete]
    assert len(set(points)) == n_trials  # per-worker sampler seeds: no point proposed twice
    run_ids = [t.user_attrs["mlflow_run_id"] for t in trials if t.number in complete]
    assert len(set(run_ids)) == n_trials
    best = [(tmp_path / f"w{i}" / "best.toml").read_text() for i in range(2)]
    assert best[0] == best[1]
    done = [t for t in trials if t.number in complete]  # best: generalised first, then value
    first = min(done, key=lambda t: (bool(t.user_attrs.get("censored")), t.value, t.number))
    if first.user_attrs.get("censored"):  # nothing generalised: said so, with no number
        assert "No trial of study 'shared' generalised" in best[0]
        assert f"trial {first.number}'s point, not a measured best" in best[0]
    else:
        assert f"Best trial {first.number} of study 'shared'" in best[0]
    assert study.best_value == min(t.value for t in trials if t.number in complete)
    return {"told": told, "study": study}
