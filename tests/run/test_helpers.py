"""The helper processes of a run: started before the command imports anything heavy, taken
over by the run, stopped when the command fails first; and the run's own modules import no
matplotlib (only the figure workers draw)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _python(code: str) -> None:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_helpers_start_before_torch_and_matplotlib_are_imported() -> None:
    """``start_helpers`` runs right after the spec is read, while the command has imported
    neither torch nor matplotlib: so it must import neither, and it starts two figure
    workers (one for a one-member run on two cores or fewer; without member figures one for
    a population's own and none for one member) and the probe process (on the CPU), or no
    probe process on a GPU. A closed pass's children are awaited (bounded) before
    the next is counted: a probe process closed while importing is killed, not waited for."""
    _python(
        "import sys, time, multiprocessing as mp\n"
        "from grokexp.run.helpers import start_helpers\n"
        "for device, members, cores, figures, workers in (('cpu', 16, 2, True, 2),\n"
        "        ('auto', 2, 2, True, 2), ('cuda', 5, 2, True, 2), ('cpu', 1, 2, True, 1),\n"
        "        ('cuda', 1, 1, True, 1), ('cpu', 1, 8, True, 2), ('cpu', 16, 8, False, 1),\n"
        "        ('cpu', 1, 8, False, 0), ('cuda', 1, 2, False, 0)):\n"
        "    helpers = start_helpers(device, members, cores, figures)\n"
        "    started = workers + (device != 'cuda')\n"
        "    assert helpers.figures.workers == workers, (members, cores, helpers.figures)\n"
        "    children = mp.active_children()\n"
        "    assert len(children) == started, (device, children)\n"
        "    assert (helpers.probes is None) == (device == 'cuda')\n"
        "    heavy = [m for m in ('torch', 'matplotlib', 'mlflow') if m in sys.modules]\n"
        "    assert not heavy, heavy\n"
        "    helpers.close()\n"
        "    helpers.close()  # twice is harmless\n"
        "    deadline = time.monotonic() + 60\n"  # bounded: until this pass's helpers ended
        "    while any(c.exitcode is None for c in children) and time.monotonic() < deadline:\n"
        "        time.sleep(0.05)\n"
        "    assert all(c.exitcode is not None for c in children), children\n"
        "    mp.active_children()  # reaps them\n")


def test_the_run_and_its_figures_modules_import_no_matplotlib() -> None:
    """The main process hands every figure to the workers: importing the runner, the
    figures it submits and the CLI's run path costs no matplotlib (about 0.45 s of CPU)."""
    _python(
        "import sys\n"
        "import grokexp.run.runner, grokexp.figures.sets, grokexp.figures.run, grokexp.cli.run\n"
        "import grokexp.tracking.mlflow_tracker\n"
        "assert 'matplotlib' not in sys.modules\n"
        "from grokexp.figures.margins import fixed_figure\n"
        "fixed_figure(2, 2)\n"
        "assert 'matplotlib' in sys.modules\n")


def test_a_figure_is_logged_without_pyplot(tmp_path) -> None:
    """The tracker saves a Figure as it is: importing pyplot would pick a backend (a GUI one
    where a display is set), which the figure workers' Agg never needed."""
    from mlflow.tracking import MlflowClient

    _python(
        "import sys\n"
        "from grokexp.figures.margins import fixed_figure\n"
        "from grokexp.tracking.mlflow_tracker import MlflowTracker\n"
        f"tracker = MlflowTracker('sqlite:///{tmp_path / 'mlflow.db'}', 'figs')\n"
        "run = tracker.start_run('r', {}, {})\n"
        "tracker.log_figure(run, fixed_figure(2, 2), 'figures/f.png')\n"
        "tracker.end_run(run, 'FINISHED')\n"
        "tracker.flush()\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n")
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("figs").experiment_id])
    (png,) = client.list_artifacts(run.info.run_id, "figures")
    assert png.path == "figures/f.png" and png.file_size > 0


@pytest.mark.parametrize("problem", ["memory", "store"])
def test_a_command_that_fails_before_its_run_stops_its_helpers(write_spec, tmp_path,
                                                               problem) -> None:
    """The helpers start before the memory check and the store's opening; when either
    refuses (exit 2 for the memory, 1 for the store), the command stops them: no helper
    outlives it. Run in a subprocess, whose children are counted there. Polled, not joined:
    a killed probe process is reaped by its executor's thread too, and a ``join`` that loses
    that race returns with the child still reading as alive until the thread records its
    exit code (CI saw it once)."""
    spec = write_spec('name = "h"\n[task]\nmodulus = 7\n[model]\nembedding_dim = 4\n'
                      'hidden = 8\n[train]\nepochs = 2\nbatch_size = 8\n')
    args, code = [str(spec)], 2 if problem == "memory" else 1
    if problem == "memory":
        args += ["--memory-limit", "0.000001", "--tracking-uri",
                 f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"]
    else:
        (tmp_path / "file").write_text("not a folder")
        args += ["--tracking-uri", f"sqlite:///{tmp_path / 'file' / 'mlflow.db'}"]
    _python(
        "import multiprocessing as mp, sys\n"
        "from click.testing import CliRunner\n"
        "from grokexp.cli import main\n"
        f"result = CliRunner().invoke(main, ['run', *{args!r}])\n"
        f"assert result.exit_code == {code}, (result.exit_code, result.output)\n"
        "import time\n"
        "deadline = time.monotonic() + 60\n"  # bounded: until every helper has ended
        "while [c for c in mp.active_children() if c.is_alive()] and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        "assert not [c for c in mp.active_children() if c.is_alive()], mp.active_children()\n")


def _alive(pid: int) -> bool:
    """Running (a zombie that nobody reaps is gone for our purpose)."""
    from pathlib import Path

    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")
def test_helpers_end_when_the_command_is_killed_before_it_stops_them(tmp_path) -> None:
    """A command killed before it could stop its helpers (SIGKILL; or SIGTERM before the run
    handles it): each helper waits for its parent's end and ends too, rather than wait on
    its task queue forever."""
    from conftest import wait_until

    pids = tmp_path / "pids"
    code = ("import os, signal, time, multiprocessing as mp\n"
            "from grokexp.run.helpers import start_helpers\n"
            "helpers = start_helpers('cpu', members=2)\n"
            "for _ in range(2400):\n"  # bounded: until the probe process is ready
            "    if helpers.probes.ready():\n"
            "        break\n"
            "    time.sleep(0.05)\n"
            f"open({str(pids)!r}, 'w').write(' '.join(str(p.pid) for p in mp.active_children()))\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == -9, done.stderr[-2000:]
    children = [int(p) for p in pids.read_text().split()]
    assert len(children) == 3
    wait_until(lambda: not any(_alive(p) for p in children), 60, "the helpers to end")
