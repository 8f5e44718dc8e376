"""A disk that fills mid-run: one line, nothing half-written, a checkpoint wherever one fits.

The small disk is a real tmpfs of a few MiB mounted in tmp_path (root only: as a user, or
where mounting is refused, the tests skip, and fail under GROKEXP_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TINY, TWO_SEEDS, BreakStore, read_until, require_service, stop_group
from mlflow.tracking import MlflowClient

from grokexp.cli import main
from grokexp.engine.sweep import expand_members
from grokexp.errors import RunInterrupted
from grokexp.run.runner import run_experiment
from grokexp.spec.io import load_spec
from grokexp.tracking.mlflow_tracker import MlflowTracker


def _mount(folder: Path, size: str) -> None:
    if os.geteuid() != 0:
        require_service("a small disk needs root to mount a tmpfs")
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                       capture_output=True, text=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as err:
        require_service(f"cannot mount a tmpfs here: {getattr(err, 'stderr', None) or err}")


@pytest.fixture
def small_disk(tmp_path):
    """A 8 MiB file system of its own (a tmpfs), unmounted after the test."""
    folder = tmp_path / "disk"
    folder.mkdir()
    _mount(folder, "8m")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=60)


def fill(disk: Path) -> Path:
    """Write a file until the disk refuses another byte; returns it (delete it to free)."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:
        for chunk in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    out.write(b"\0" * chunk)
            except OSError as err:
                assert err.errno == errno.ENOSPC, err
    return filler


def _half_written(base: Path) -> list[Path]:
    """Recovery folders without their README and journal."""
    if not base.exists():
        return []
    return [f for f in base.iterdir()
            if not ((f / "README.txt").is_file() and (f / "journal.jsonl").is_file())]


def test_disk_filling_mid_run_is_one_line_and_leaves_nothing_half_written(small_disk,
                                                                          migrated_store,
                                                                          tmp_path):
    (small_disk / "mlruns").mkdir()
    shutil.copy(migrated_store, small_disk / "mlruns" / "mlflow.db")
    uri = f"sqlite:///{small_disk}/mlruns/mlflow.db"
    spec = tmp_path / "long.toml"
    spec.write_text(TINY.replace("epochs = 20", "epochs = 100000"))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "grokexp", "run", str(spec),
                             "--tracking-uri", uri, "--recovery-dir",
                             str(small_disk / "grokexp-recovery")],
                            cwd=small_disk, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stderr is not None
        _, seen = read_until(proc, proc.stderr, lambda line: line.startswith("epoch"), 120,
                             "a progress line (training has begun)")
        filler = fill(small_disk)  # the disk fills while it trains
        _, rest = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            stop_group(proc)
    err = seen + rest
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if not line.startswith(("epoch", "warning"))]
    assert len(errors) == 1, err
    assert errors[0].startswith("error: tracking store sqlite:///")
    assert "cannot be written either" in errors[0] and "No space left on device" in errors[0]
    assert "no checkpoint could be written" in errors[0]
    filler.unlink()
    assert _half_written(small_disk / "grokexp-recovery") == []
    client = MlflowClient(tracking_uri=uri)  # the store is whole: it opens and reads
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1 and runs[0].data.params["train.epochs"] == "100000"


SPEC = TWO_SEEDS.replace('name = "faulty"', 'name = "full"')


def test_a_full_recovery_disk_still_leaves_a_resumable_run(tracking_uri, tmp_path):
    disk = tmp_path / "rec"
    disk.mkdir()
    _mount(disk, "64k")
    try:
        filler = fill(disk)
        spec = load_spec(SPEC, "full.toml")
        tracker = MlflowTracker(tracking_uri, spec.name, flush_every_s=0.0,
                                retry_delays=(0.01, 0.02), recovery_dir=disk)
        breaker = BreakStore(Path(tracking_uri.removeprefix("sqlite:///")), epoch=15)

        def should_stop() -> bool:
            if tracker.failure is not None and breaker.saved:  # the store answers again
                breaker.repair()
            return tracker.failure is not None

        with pytest.raises(RunInterrupted) as stopped:
            run_experiment(spec, expand_members(spec), tracker, hooks=[breaker],
                           should_stop=should_stop)
        assert stopped.value.epoch == 15
        assert tracker.lost is not None and "No space left on device" in tracker.lost
        assert tracker.dropped  # what neither the store nor the folder took
        filler.unlink()
        assert _half_written(disk) == []
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=60)
    root = stopped.value.root_run_id
    client = MlflowClient(tracking_uri=tracking_uri)  # the checkpoint went to the store
    parent = client.get_run(root)
    assert parent.data.tags["grokexp.checkpoint_epoch"] == "15"
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{root}'")
    assert {r.info.status for r in [parent, *children]} == {"KILLED"}
    resumed = CliRunner().invoke(main, ["run", "--resume", root, "--tracking-uri",
                                        tracking_uri, "--json"])
    assert resumed.exit_code == 0, resumed.output
    assert client.get_run(root).info.status == "FINISHED"
