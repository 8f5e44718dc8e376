"""Faults: diverging members, and tracking stores that are down, locked or break mid-run."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import TWO_SEEDS, BreakStore, free_port, read_until, require_service
from mlflow.tracking import MlflowClient

from grokexp.cli import main
from grokexp.engine.sweep import expand_members
from grokexp.errors import RunInterrupted
from grokexp.run.runner import run_experiment, train_group
from grokexp.spec.io import load_spec
from grokexp.tracking.mlflow_tracker import MlflowTracker

DIVERGING = '\n[sweep]\n"init.scale" = [1.0, 1e30]\n'


def test_diverging_member_fails_alone_and_is_named(write_spec, tracking_uri):
    from conftest import TINY

    result = CliRunner().invoke(main, ["run", write_spec(TINY + DIVERGING),
                                       "--tracking-uri", tracking_uri, "--json"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    members = json.loads(result.stdout.strip().splitlines()[-1])["members"]
    assert [m["status"] for m in members] == ["FINISHED", "FAILED"]
    assert members[1]["reason"].startswith("train loss became")
    assert "error: 1 of 2 member(s) failed:" in result.stderr
    line = next(x for x in result.stderr.splitlines() if x.strip().startswith("member 1"))
    assert "init.scale=1e+30" in line and "train loss became" in line
    client = MlflowClient(tracking_uri=tracking_uri)
    failed = client.get_run(members[1]["run_id"])
    assert failed.info.run_id in line
    assert failed.info.status == "FAILED"
    assert failed.data.tags["grokexp.reason"].startswith("train loss became")
    healthy = client.get_run(members[0]["run_id"])
    assert healthy.info.status == "FINISHED"  # the other member went on to its last epoch
    assert max(m.step for m in client.get_metric_history(healthy.info.run_id, "test_acc")) == 20
    parent = client.get_run(failed.data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FAILED"


def _run_fails_fast(write_spec, uri: str, expect: str, tmp_path: Path) -> str:
    started = time.monotonic()
    result = CliRunner().invoke(main, ["run", write_spec(), "--tracking-uri", uri,
                                       "--recovery-dir", str(tmp_path / "rec")])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], result.output
    assert lines[0].startswith("error: tracking store ")
    assert time.monotonic() - started < 30
    return lines[0]


def test_unreachable_server_is_refused_before_training(write_spec, tmp_path):
    port = free_port()
    line = _run_fails_fast(write_spec, f"http://user:hunter2@127.0.0.1:{port}",
                           f"cannot reach 127.0.0.1:{port}", tmp_path)
    assert "hunter2" not in line and "user:***@" in line


def test_locked_sqlite_is_refused_before_training(write_spec, tracking_uri, tmp_path):
    holder = sqlite3.connect(tracking_uri.removeprefix("sqlite:///"))
    holder.execute("BEGIN EXCLUSIVE")
    try:
        _run_fails_fast(write_spec, tracking_uri, "is locked by another process", tmp_path)
    finally:
        holder.rollback()
        holder.close()


def test_store_in_a_file_path_is_refused(write_spec, tmp_path):
    (tmp_path / "plain").write_text("")
    _run_fails_fast(write_spec, f"sqlite:///{tmp_path}/plain/mlflow.db", "is not a directory",
                    tmp_path)


def _refuses_writes(folder: Path) -> bool:
    probe = folder / ".probe"
    try:
        probe.write_text("")
    except OSError:
        return True
    probe.unlink()
    return False


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory this process cannot write, by a means its user cannot bypass.

    A user: mode 555. Root, whom mode bits do not stop: a read-only tmpfs mounted over it, or
    where mounting is not allowed, the immutable attribute (``chattr +i``). Each is checked to
    refuse a write before the test runs; if none does, the test skips (fails in CI).
    """
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        ways = [("mode 555", lambda: folder.chmod(0o555), lambda: folder.chmod(0o755))]
    else:
        def command(*args: str):
            def run() -> None:
                subprocess.run([*args, str(folder)], capture_output=True, text=True,
                               check=True, timeout=60)
            return run

        ways = [("a read-only tmpfs", command("mount", "-t", "tmpfs", "-o", "ro,size=1m",
                                              "tmpfs"), command("umount")),
                ("chattr +i", command("chattr", "+i"), command("chattr", "-i"))]
    failed = []
    for name, make, undo in ways:
        try:
            make()
        except (OSError, subprocess.SubprocessError) as err:
            failed.append(f"{name}: {getattr(err, 'stderr', None) or err}".strip())
            continue
        try:
            if _refuses_writes(folder):
                yield folder
                return
            failed.append(f"{name}: the directory still took a write")
        finally:
            undo()
    require_service("cannot make a directory read-only for this process here: "
                    + "; ".join(failed))


def test_read_only_directory_is_refused_before_training(write_spec, read_only_dir, tmp_path):
    _run_fails_fast(write_spec, f"sqlite:///{read_only_dir}/mlflow.db", "is not writable",
                    tmp_path)


SPEC = TWO_SEEDS


def test_store_failing_mid_run_loses_nothing(tracking_uri, tmp_path):
    spec = load_spec(SPEC, "faulty.toml")
    members = expand_members(spec)
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    tracker = MlflowTracker(tracking_uri, spec.name, flush_every_s=0.0,
                            retry_delays=(0.01, 0.02), recovery_dir=tmp_path / "rec")
    breaker = BreakStore(db, epoch=15)
    with pytest.raises(RunInterrupted) as stopped:
        run_experiment(spec, members, tracker, hooks=[breaker],
                       should_stop=lambda: tracker.failure is not None)
    assert stopped.value.epoch == 15
    assert tracker.failure is not None and "file is not a database" in tracker.failure
    assert tracker.journal is not None
    folder = tracker.journal.folder
    assert f"grokexp relog {folder}" in (folder / "README.txt").read_text()
    assert any(p.name == "checkpoint.pt" for p in folder.rglob("*"))
    breaker.repair()
    relogged = CliRunner().invoke(main, ["relog", str(folder), "--tracking-uri", tracking_uri])
    assert relogged.exit_code == 0, relogged.output
    root = stopped.value.root_run_id
    assert f"grokexp run --resume {root}" in relogged.output
    client = MlflowClient(tracking_uri=tracking_uri)
    assert client.get_run(root).info.status == "KILLED"
    again = CliRunner().invoke(main, ["relog", str(folder), "--tracking-uri", tracking_uri])
    assert again.exit_code == 0 and "re-logged already" in again.output  # replayed once
    resumed = CliRunner().invoke(main, ["run", "--resume", root, "--tracking-uri",
                                        tracking_uri, "--json"])
    assert resumed.exit_code == 0, resumed.output
    out = json.loads(resumed.stdout.strip().splitlines()[-1])
    reference = train_group(members, torch.device("cpu"), [])
    for member in out["members"]:
        expected = reference.by_index(member["index"])
        for key in ("train_acc", "test_acc", "train_loss", "test_loss"):
            history = client.get_metric_history(member["run_id"], key)
            assert [(m.step, m.value) for m in history] == list(
                zip(expected.epochs, expected.metrics[key], strict=True))


def test_cli_names_the_recovery_folder_when_the_store_breaks(write_spec, tracking_uri,
                                                             tmp_path):
    import sys

    from conftest import TINY

    spec = write_spec(TINY.replace("epochs = 20", "epochs = 200"), "slow.toml")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "grokexp", "run", spec, "--tracking-uri",
                             tracking_uri, "--recovery-dir", str(tmp_path / "rec")],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    _, seen = read_until(proc, proc.stderr, lambda line: line.startswith("epoch"), 120,
                         "a progress line (training has begun)")
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    with db.open("r+b") as f:  # another process wrecks the store while we train
        f.write(b"\0" * 100)
    _, rest = proc.communicate(timeout=300)
    err = seen + rest
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    assert "error: tracking store sqlite:///" in err and "file is not a database" in err
    folders = list((tmp_path / "rec").iterdir())
    assert len(folders) == 1 and (folders[0] / "journal.jsonl").is_file()
    assert "nothing is lost: " in err and str(folders[0]) in err
    assert f"grokexp relog {folders[0]} --tracking-uri {tracking_uri}" in err
