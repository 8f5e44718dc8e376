"""The multi-machine set-up of docs/scale-out.md, run for real on one machine.

One PostgreSQL cluster (tests/services/postgres.sh) holds two databases owned by a role with a
password: the Optuna study and MLflow's backend store. ``mlflow server`` serves runs and
proxies artifacts (``mlflow-artifacts:``) over that database, on a free loopback port; the
workers are ``grokexp optimize`` processes given ``--storage postgresql://…`` and
``--tracking-uri http://127.0.0.1:PORT``, exactly as docs/scale-out.md shows.
Everything is read back through the server (``MlflowClient`` over HTTP) and the database.

Where PostgreSQL or its driver cannot be had the tests skip, saying why (fail in CI).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import (
    free_port,
    healthy,
    import_service,
    start_postgres,
    stop_group,
    stop_postgres,
    wait_until,
)
from optimize_helpers import OPT_TINY, REPO
from optuna.trial import TrialState

PASSWORD = "Sc4le-0ut-pw"  # the role's; it must show up nowhere in MLflow
EVERY = 10  # OPT_TINY's metrics.every


@dataclass
class Services:
    """The database and the tracking server every worker of these tests shares."""

    storage: str  # postgresql://grokexp:PASSWORD@127.0.0.1:PORT/studies, as a worker is given
    backend: str  # MLflow's backend store, postgresql+psycopg://…/mlflow
    tracking_uri: str
    port: int
    artifacts: Path
    log: Path
    server: subprocess.Popen | None = None

    def start_server(self) -> None:
        """``mlflow server`` over the database, artifacts proxied; returns once /health
        answers. The store URI goes in the environment (as --backend-store-uri would),
        so that ``ps`` shows no password."""
        env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": self.backend,
               "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job runner processes
        with self.log.open("a") as out:  # a file, not a pipe: its output can never block it
            self.server = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
                 "--port", str(self.port), "--workers", "1", "--serve-artifacts",
                 "--artifacts-destination", str(self.artifacts)],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: healthy(self.tracking_uri), 120, "mlflow server answering /health",
                   self.server, poll_s=0.2, log=self.log)

    def stop_server(self) -> None:
        """SIGTERM the server's process group and wait until nothing answers on its port."""
        assert self.server is not None
        stop_group(self.server)
        self.server = None
        wait_until(lambda: not healthy(self.tracking_uri), 30, "mlflow server gone")


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory):
    import psycopg

    admin, directory = start_postgres()
    services = None
    try:
        host = admin.split("@", 1)[1].split("/", 1)[0]  # 127.0.0.1:PORT
        with psycopg.connect(admin, autocommit=True) as conn:  # trust: the superuser
            conn.execute(f"CREATE ROLE grokexp LOGIN PASSWORD '{PASSWORD}'")
            conn.execute("CREATE DATABASE studies OWNER grokexp")
            conn.execute("CREATE DATABASE mlflow OWNER grokexp")
            hba = Path(directory) / "data" / "pg_hba.conf"  # the role must give its password
            hba.write_text("host all grokexp 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
            conn.execute("SELECT pg_reload_conf()")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(f"postgresql://grokexp:wrong@{host}/studies").close()
        psycopg.connect(f"postgresql://grokexp:{PASSWORD}@{host}/studies").close()
        port = free_port()
        base = tmp_path_factory.mktemp("server")
        services = Services(
            storage=f"postgresql://grokexp:{PASSWORD}@{host}/studies",
            backend=f"postgresql+psycopg://grokexp:{PASSWORD}@{host}/mlflow",
            tracking_uri=f"http://127.0.0.1:{port}", port=port,
            artifacts=base / "artifacts", log=base / "server.log")
        services.start_server()
        yield services
    finally:
        if services is not None and services.server is not None:
            stop_group(services.server)
        stop_postgres(directory)


# --- workers ---------------------------------------------------------------------------

@dataclass
class Worker:
    proc: subprocess.Popen
    err: Path
    out: Path

    def said(self) -> str:
        return self.err.read_text(errors="replace") if self.err.is_file() else ""

    def wait(self, timeout_s: float) -> int:
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            stop_group(self.proc)
            pytest.fail(f"worker still running after {timeout_s:g} s; it wrote:\n"
                        f"{self.said()[-4000:]}", pytrace=False)


def start_worker(services: Services, tmp_path: Path, name: str, spec: str, study: str,
                 n_trials: int, epochs: int, *extra: str) -> Worker:
    """``grokexp optimize`` as docs/scale-out.md's workers run it, output in tmp_path files."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    env.pop("MLFLOW_TRACKING_URI", None)
    env["OMP_NUM_THREADS"] = "1"  # tiny models: threads only contend on 2 cores
    # no HTTP retries inside MLflow's client: grokexp's own (0.5, 1, 2, 4 s), then its journal
    env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    args = [spec, "--storage", services.storage, "--tracking-uri", services.tracking_uri,
            "--study", study, "--n-trials", str(n_trials), "--batch", "1",
            "--set", f'tracking.experiment="{study}"', "--set", f"train.epochs={epochs}",
            "--set", "train.stop_after_generalized=100000",  # every trial trains all epochs
            "--set", "optimize.heartbeat_s=0.5", "--set", "optimize.grace_s=2",
            "--out", str(tmp_path / name), "--recovery-dir", str(tmp_path / "recovery"),
            "--quiet", *extra]
    err, out = tmp_path / f"{name}.err", tmp_path / f"{name}.out"
    with err.open("w") as e, out.open("w") as o:
        proc = subprocess.Popen([sys.executable, "-m", "grokexp", "optimize", *args],
                                cwd=tmp_path, env=env, stdout=o, stderr=e, text=True,
                                start_new_session=True)
    return Worker(proc, err, out)


class Study:
    """The study as the database holds it, read the way the workers open it."""

    def __init__(self, services: Services, name: str):
        from grokexp.study.storage import open_storage, resolve_storage

        self.name = name
        self.storage = open_storage(resolve_storage(services.storage, ""))

    def trials(self):
        import optuna

        try:
            return optuna.load_study(study_name=self.name, storage=self.storage).get_trials()
        except KeyError:  # not created yet
            return []

    def running_with_run(self, worker_id: str | None = None):
        return [t for t in self.trials() if t.state == TrialState.RUNNING
                and t.user_attrs.get("mlflow_run_id")
                and (worker_id is None or t.user_attrs.get("worker") == worker_id)]


def worker_id(worker: Worker) -> str:
    found = wait_until(lambda: re.search(r"; worker ([0-9a-f]{12})$", worker.said(), re.M),
                       120, "the worker's first line (its id)", worker.proc, poll_s=0.1,
                       log=worker.err)
    return found.group(1)


def waiting(worker: Worker) -> bool:
    """The worker said it waits for the tracking store; fails if it exited instead."""
    if worker.proc.poll() is not None:
        pytest.fail(f"the worker exited with {worker.proc.returncode} instead of waiting for "
                    f"the store; it wrote:\n{worker.said()[-4000:]}", pytrace=False)
    return "waiting up to" in worker.said()


def told(worker: Worker) -> set[int]:
    return {int(m.group(1)) for m in re.finditer(r"^trial (\d+): COMPLETE ", worker.said(),
                                                 re.M)}


# --- what MLflow holds, read through the server ------------------------------------------

def runs_of(client, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r} on the server"
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("grokexp.role") == "study"]
    children = [r for r in runs if r.data.tags.get("grokexp.role") == "trial"]
    assert len(parents) + len(children) == len(runs)
    return parents, children


def check_trial_runs(client, trials, children, parent_id: str, epochs: int) -> None:
    """One child run per complete trial, under the parent, FINISHED, with its objective
    and every evaluation's metrics: nothing MLflow was sent is missing."""
    by_id = {r.info.run_id: r for r in children}
    for trial in (t for t in trials if t.state == TrialState.COMPLETE):
        run = by_id[trial.user_attrs["mlflow_run_id"]]
        assert run.data.tags["mlflow.parentRunId"] == parent_id
        assert run.data.tags["optuna.trial"] == str(trial.number)
        assert run.data.tags["optuna.state"] == "COMPLETE"
        assert run.data.tags["grokexp.worker"] == trial.user_attrs["worker"]
        assert run.info.status == "FINISHED", (trial.number, run.info.status)
        assert run.data.metrics["objective"] == pytest.approx(trial.value)
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "test_acc")]
        assert sorted(steps) == list(range(0, epochs + 1, EVERY)), trial.number


def download(client, run_id: str, path: str, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=False)  # a fresh folder: nothing read from a local path
    return Path(client.download_artifacts(run_id, path, str(dst)))


def check_no_password(client, runs, tmp_path: Path) -> None:
    """Not in any param or tag, nor in any artifact, all of them downloaded."""
    for run in runs:
        for key, value in [*run.data.params.items(), *run.data.tags.items()]:
            assert PASSWORD not in value, (run.info.run_id, key)
        got = download(client, run.info.run_id, "", tmp_path / "scan" / run.info.run_id)
        files = [p for p in got.rglob("*") if p.is_file()]
        assert files or run.data.tags.get("grokexp.role") == "trial"
        for file in files:
            assert PASSWORD.encode() not in file.read_bytes(), file


def spec_file(tmp_path: Path) -> str:
    path = tmp_path / "opt.toml"
    path.write_text(OPT_TINY)
    return str(path)


# --- the tests ---------------------------------------------------------------------------

@pytest.mark.timeout(900)  # its fixture may install PostgreSQL (make test does so beforehand)
def test_two_workers_share_postgresql_and_a_tracking_server_one_killed(services, tmp_path):
    from mlflow.tracking import MlflowClient

    spec, n_trials, epochs = spec_file(tmp_path), 4, 600
    study = Study(services, "scale-kill")
    client = MlflowClient(tracking_uri=services.tracking_uri)
    workers = [start_worker(services, tmp_path, f"w{i}", spec, study.name, n_trials, epochs)
               for i in range(2)]  # at once
    doomed, survivor = workers
    try:
        doomed_id = worker_id(doomed)
        # the state to act on: a trial of this worker RUNNING, with its MLflow run
        killed = wait_until(lambda: study.running_with_run(doomed_id), 120,
                            "a trial of the first worker running with its MLflow run",
                            doomed.proc, poll_s=0.05, log=doomed.err)[0]
        doomed.proc.send_signal(signal.SIGKILL)
        assert doomed.wait(30) == -signal.SIGKILL
        assert survivor.wait(240) == 0, survivor.said()[-4000:]
    finally:
        for worker in workers:
            if worker.proc.poll() is None:
                stop_group(worker.proc)

    # the study: n_trials complete, the killed trial re-queued once and done by the other
    assert f"trial {killed.number}: its worker stopped; failed and queued again" in \
        survivor.said()
    trials = study.trials()
    assert [t.number for t in trials] == list(range(len(trials)))
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == n_trials
    assert told(doomed) | told(survivor) == {t.number for t in complete}
    assert told(doomed) & told(survivor) == set()
    stale = trials[killed.number]
    assert stale.state == TrialState.FAIL and stale.user_attrs["stale"] is True
    retry = [t for t in trials if t.user_attrs.get("retry_of") == killed.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].params == killed.params
    points = [tuple(sorted(t.params.items())) for t in complete]
    assert len(set(points)) == n_trials  # no trial twice
    assert all(t.user_attrs.get("surplus") or t.number == killed.number
               for t in trials if t.state != TrialState.COMPLETE)

    # MLflow, through the server: one parent, one child run per trial that had one
    parents, children = runs_of(client, study.name)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert parent.info.run_id == study_parent(study)
    assert {r.info.run_id for r in children} == {t.user_attrs["mlflow_run_id"] for t in trials
                                                  if "mlflow_run_id" in t.user_attrs}
    assert len(children) == n_trials + 1  # the killed trial's run and its retry's
    check_trial_runs(client, trials, children, parent.info.run_id, epochs)
    assert client.get_run(killed.user_attrs["mlflow_run_id"]).info.status == "KILLED"

    # artifacts are the server's (proxied), downloaded over HTTP into fresh folders
    for run in [parent, *children]:
        assert run.info.artifact_uri.startswith("mlflow-artifacts:/"), run.info.artifact_uri
    best = download(client, parent.info.run_id, "best.toml", tmp_path / "dl-best")
    assert best.read_text() == (tmp_path / "w1" / "best.toml").read_text()
    figures = {a.path for a in client.list_artifacts(parent.info.run_id, "figures")}
    assert {"figures/optimization_history.png", "figures/objective_space.png"} <= figures
    for name in sorted(figures):
        png = download(client, parent.info.run_id, name, tmp_path / "dl" / name)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(services.artifacts.rglob("best.toml"))  # stored where the server keeps them
    assert not (tmp_path / "mlruns").exists()  # nothing fell back to a local store

    check_no_password(client, [parent, *children], tmp_path)
    for worker in workers:
        assert PASSWORD not in worker.said() + worker.out.read_text()

    # watching the study: optuna-dashboard over the same database, as docs/scale-out.md shows
    dashboard_shows(services, study, tmp_path)


def study_parent(study: Study) -> str | None:
    import optuna

    loaded = optuna.load_study(study_name=study.name, storage=study.storage)
    return loaded.user_attrs.get("mlflow_parent_run_id")


def dashboard_shows(services: Services, study: Study, tmp_path: Path) -> None:
    import_service("optuna_dashboard", "optuna-dashboard is not installed (the dev extra)")
    port, log = free_port(), tmp_path / "dashboard.log"

    def studies():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies",
                                        timeout=5) as response:
                return json.load(response)["study_summaries"]
        except OSError:  # not listening yet
            return None

    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from optuna_dashboard._cli import main; main()",
             resolve(services.storage), "--host", "127.0.0.1", "--port", str(port),
             "--quiet"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        shown = wait_until(studies, 60, "optuna-dashboard answering /api/studies", proc,
                           poll_s=0.2, log=log)
        ours = [s for s in shown if s["study_name"] == study.name]
        assert len(ours) == 1
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/"
                                    f"{ours[0]['study_id']}?after=0", timeout=10) as response:
            detail = json.load(response)
        assert sorted(t["number"] for t in detail["trials"]) == \
            [t.number for t in study.trials()]
    finally:
        stop_group(proc)


def resolve(storage: str) -> str:
    """The URL as grokexp hands it to Optuna (postgresql:// means the psycopg 3 driver)."""
    from grokexp.study.storage import resolve_storage

    return resolve_storage(storage, "").location


def relog(services: Services, folder: str):
    """``grokexp relog FOLDER --tracking-uri http://…`` (the CLI, in this process)."""
    from click.testing import CliRunner

    from grokexp.cli import main

    return CliRunner().invoke(main, ["relog", folder, "--tracking-uri", services.tracking_uri])


@pytest.mark.timeout(900)  # its fixture may install PostgreSQL (make test does so beforehand)
def test_the_tracking_server_goes_away_mid_study(services, tmp_path):
    """Stopped while trials train, started again on the same port: the Optuna side loses
    nothing; workers with more trials to run wait for the server, re-log what it missed and
    go on; a worker that ends while it is away keeps a recovery folder for grokexp relog."""
    from mlflow.tracking import MlflowClient

    spec, n_trials, epochs, alone_epochs = spec_file(tmp_path), 6, 600, 3000
    shared, alone = Study(services, "scale-outage"), Study(services, "scale-alone")
    client = MlflowClient(tracking_uri=services.tracking_uri)
    workers = [start_worker(services, tmp_path, f"w{i}", spec, shared.name, n_trials, epochs)
               for i in range(2)]  # all three at once
    last = start_worker(services, tmp_path, "last", spec, alone.name, 1, alone_epochs)
    everyone = [*workers, last]
    try:
        try:
            # the state to act on: trials of both studies training, with their MLflow runs
            wait_until(lambda: alone.running_with_run() and shared.running_with_run()
                       and all(f"study {shared.name} in " in w.said() for w in workers), 120,
                       "both studies training a trial with its MLflow run, both shared "
                       "workers joined", last.proc, poll_s=0.05, log=last.err)
            taken = [t for t in shared.trials()
                     if t.state in (TrialState.COMPLETE, TrialState.RUNNING)]
            assert len(taken) <= n_trials - 2, "too few trials left for both to wait"
            services.stop_server()
            # the lone worker ends its study while the server is away: it keeps the folder
            assert last.wait(180) == 1, last.said()[-4000:]
            # the others have trials left: each waits for the server before its next batch
            wait_until(lambda: all(waiting(w) for w in workers), 120,
                       "both workers of the shared study waiting for the server")
        finally:
            if services.server is None:
                services.start_server()  # the same port: the workers' --tracking-uri
        for worker in workers:
            assert worker.wait(240) == 0, worker.said()[-4000:]
    finally:
        for worker in everyone:
            if worker.proc.poll() is None:
                stop_group(worker.proc)

    # the shared study: nothing lost on either side, the workers' folders re-logged by them
    trials = shared.trials()
    assert [t.number for t in trials] == list(range(len(trials)))
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == n_trials
    for trial in (t for t in trials if t.state != TrialState.COMPLETE):  # none lost:
        assert trial.user_attrs.get("surplus") or (  # past the total, or asked as the
            trial.user_attrs.get("store_unavailable")  # server went: queued again, done
            and [t for t in complete if t.user_attrs.get("retry_of") == trial.number])
    said = [told(w) for w in workers]
    assert said[0] & said[1] == set() and said[0] | said[1] == {t.number for t in complete}
    kept = []  # each worker lost its writes mid-training (kept, re-logged) or its run's
    for worker in workers:  # creation at a batch's start (the batch queued again): both wait
        text = worker.said()
        assert "answers again" in text, text[-4000:]
        if "training goes on, what the store misses is kept in" in text:
            kept.append(worker)
            assert re.search(r"answers again: re-logged \S+ \(\d+ metrics", text), text[-4000:]
        else:
            assert "the batch's trials are queued again" in text, text[-4000:]
    assert kept  # the server went away while a trial of the shared study was training
    relogged = sorted({m.group(1) for w in workers for m in re.finditer(
        r"answers again: re-logged (\S+) \(", w.said())})
    assert relogged and all((Path(f) / "RELOGGED").is_file() for f in relogged)
    parents, children = runs_of(client, shared.name)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert parents[0].info.run_id == study_parent(shared)
    # one run per trial that got one: every complete trial, and any trial of a batch given
    # back when the server refused a later trial's run (failed, its run ended KILLED; a run
    # the server made just before it went away ends FAILED)
    numbers = [int(r.data.tags["optuna.trial"]) for r in children]
    assert len(numbers) == len(set(numbers))
    state = {t.number: t.state for t in trials}
    extra = [r for r in children if state[int(r.data.tags["optuna.trial"])] != TrialState.COMPLETE]
    assert len(children) - len(extra) == n_trials
    assert all(state[int(r.data.tags["optuna.trial"])] == TrialState.FAIL
               and r.info.status in ("KILLED", "FAILED") for r in extra)
    check_trial_runs(client, trials, children, parents[0].info.run_id, epochs)
    again = relog(services, relogged[0])  # once more: replayed once only, nothing written
    assert again.exit_code == 0, again.output
    assert "re-logged already" in again.output, again.output

    # the lone worker: its trial told while the server was away; MLflow missed its end
    text = last.said()
    assert "error: tracking store http://127.0.0.1:" in text, text[-4000:]
    folder = re.search(rf"grokexp relog (\S+) --tracking-uri {re.escape(services.tracking_uri)}"
                       r"$", text, re.M)
    assert folder, text[-4000:]
    (trial,) = alone.trials()
    assert trial.state == TrialState.COMPLETE and "trial 0: COMPLETE " in text
    (parent,), (child,) = runs_of(client, alone.name)
    assert child.info.run_id == trial.user_attrs["mlflow_run_id"]
    assert child.info.status == "RUNNING" and "objective" not in child.data.metrics
    assert not [a for a in client.list_artifacts(parent.info.run_id) if a.path == "best.toml"]
    back = relog(services, folder.group(1))
    assert back.exit_code == 0, back.output
    assert re.search(r": [1-9]\d* metrics, ", back.output), back.output
    (parent,), children = runs_of(client, alone.name)
    assert parent.info.status == "FINISHED"
    check_trial_runs(client, [trial], children, parent.info.run_id, alone_epochs)
    best = download(client, parent.info.run_id, "best.toml", tmp_path / "dl-best")
    assert best.read_text() == (tmp_path / "last" / "best.toml").read_text()
    check_no_password(client, [parent, *children], tmp_path)
