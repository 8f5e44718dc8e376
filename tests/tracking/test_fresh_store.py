"""Several workers started at the same instant on a fresh default store (no mlruns/ yet).

MLflow creates its schema on first use; every worker that finds no schema would create it,
and all but one would crash with ``table experiments already exists``. Each process here
imports the heavy modules first, then waits on a barrier file, so that all of them open the
store together; the test releases them once every one is ready.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import TINY, wait_until
from mlflow.tracking import MlflowClient
from optimize_helpers import OPT_TINY, REPO, load
from optuna.trial import TrialState

WORKERS = 3

# imports what grokexp needs before the store is opened, says so, waits for the barrier
# (bounded), then is `grokexp ARGS...` in this process
LAUNCHER = """
import os, sys, time
import mlflow.tracking, optuna, torch  # noqa: F401  the slow part, before the barrier
ready, go = sys.argv[1], sys.argv[2]
open(ready, "w").close()
deadline = time.monotonic() + 120
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit("barrier never released")
    time.sleep(0.002)
from grokexp.cli import main
main(sys.argv[3:], prog_name="grokexp")
"""


def _together(args: list[str], cwd: Path) -> list[tuple[int, str, str]]:
    """``grokexp ARGS`` in WORKERS processes released at once in ``cwd``; (rc, out, err)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(name, None)
    env.setdefault("OMP_NUM_THREADS", "1")
    barrier = cwd.parent / f"{cwd.name}-barrier"
    barrier.mkdir()
    go = barrier / "go"
    procs = [subprocess.Popen([sys.executable, "-c", LAUNCHER, str(barrier / f"ready{i}"),
                               str(go), *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for i in range(WORKERS)]
    try:
        for i, proc in enumerate(procs):
            wait_until(lambda i=i: (barrier / f"ready{i}").exists(), 120,
                       f"worker {i} ready at the barrier", proc)
        go.touch()
        outputs = [proc.communicate(timeout=240) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=30)
    return [(proc.returncode, out, err) for proc, (out, err) in zip(procs, outputs,
                                                                     strict=True)]


def _all_clean(results: list[tuple[int, str, str]]) -> None:
    for i, (rc, _out, err) in enumerate(results):
        assert rc == 0 and "Traceback" not in err and "already exists" not in err, \
            f"worker {i} exited {rc}:\n{err[-4000:]}"


def test_three_optimize_workers_on_a_fresh_default_store(tmp_path):
    work = tmp_path / "fresh"
    work.mkdir()
    (work / "opt.toml").write_text(OPT_TINY)
    n_trials = 3
    results = _together(["optimize", "opt.toml", "--n-trials", str(n_trials), "--batch", "1",
                         "--set", "train.epochs=20", "--quiet"], work)
    _all_clean(results)
    assert (work / "mlruns" / "mlflow.db").is_file() and (work / "mlruns" / "optuna.log").is_file()
    trials = load(str(work / "mlruns" / "optuna.log")).get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == n_trials
    assert all(t.state == TrialState.FAIL and t.user_attrs.get("surplus")
               for t in trials if t.state != TrialState.COMPLETE)
    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("opt")
    parents = client.search_runs([exp.experiment_id], "tags.`grokexp.role` = 'study'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0].info.run_id
    children = client.search_runs([exp.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parent}'")
    by_trial = {t.user_attrs["mlflow_run_id"] for t in complete}
    assert len(by_trial) == n_trials  # one run per trial, none shared
    assert {r.info.run_id for r in children} == by_trial  # and no run of a lost worker
    assert all(r.info.status == "FINISHED" for r in children)
    assert len(client.search_experiments()) == 2  # Default and opt: one each


def test_three_runs_on_a_fresh_default_store(tmp_path):
    work = tmp_path / "fresh"
    work.mkdir()
    (work / "tiny.toml").write_text(TINY)
    light = ["metrics.mc_dropout=false", "metrics.drc=false", "metrics.checkpoints=0"]
    results = _together(["run", "tiny.toml", "--json",
                         *(arg for item in light for arg in ("--set", item))], work)
    _all_clean(results)
    told = [json.loads(out.strip().splitlines()[-1]) for _rc, out, _err in results]
    roots = {r["parent_run_id"] or r["run_ids"][0] for r in told}
    assert len(roots) == WORKERS
    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tiny")
    runs = client.search_runs([exp.experiment_id])
    assert {r.info.run_id for r in runs if "mlflow.parentRunId" not in r.data.tags} == roots
    assert {r.info.run_id for r in runs} == {i for r in told for i in r["run_ids"]} | roots
    assert all(r.info.status == "FINISHED" for r in runs)
    assert len(client.search_experiments()) == 2  # Default and tiny: one each
