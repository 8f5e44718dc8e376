"""Shared helpers: tiny specs written into tmp_path, a real MLflow store beside them, and the
one rule for tests whose service could not be set up."""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

from grokexp.engine.train import EvalContext, Hook

REQUIRE_SERVICES = "GROKEXP_REQUIRE_SERVICES"  # .ci/run sets it to 1

TINY = """
name = "tiny"
[task]
modulus = 11
[model]
embedding_dim = 16
hidden = 32
[train]
epochs = 20
lr = 1e-2
batch_size = 16
[metrics]
every = 5
"""

# The tiny model with every diagnostic on, its chosen epochs reached between evaluations, and
# three checkpoints: what the diagnostics tests run.
TINY_DIAGNOSED = TINY.replace("[metrics]\nevery = 5\n", "") + """
[metrics]
every = 5
mc_dropout_every = 10
mc_samples = 4
drc_epochs = [0, 12]
drc_rates = [0.0, 0.5]
drc_samples = 2
heatmap_epochs = [0, 20]
histogram_epochs = [7]
checkpoints = 3
"""


# Two seeds of a tiny model, 40 epochs: what the fault tests interrupt, break and resume.
TWO_SEEDS = """
name = "faulty"
[task]
modulus = 11
[model]
embedding_dim = 12
hidden = 16
[train]
epochs = 40
lr = 1e-2
batch_size = 16
[metrics]
every = 5
[sweep]
seeds = [0, 1]
"""


class BreakStore(Hook):
    """At one evaluation, overwrite the sqlite header in place: every later write fails
    (``repair`` puts it back)."""

    def __init__(self, db: Path, epoch: int):
        self.db, self.epoch, self.saved = db, epoch, b""

    def on_evaluation(self, ctx: EvalContext, values: dict[str, list[float]]) -> None:
        if ctx.epoch == self.epoch:
            with self.db.open("r+b") as f:
                self.saved = f.read(100)
                f.seek(0)
                f.write(b"\0" * 100)

    def repair(self) -> None:
        with self.db.open("r+b") as f:
            f.write(self.saved)
        self.saved = b""


@contextlib.contextmanager
def working_in(folder: Path):
    """Run with ``folder`` (made here, if new) as the working directory: where a command
    would put its default store or recovery folder."""
    folder.mkdir(parents=True, exist_ok=True)
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(before)


@pytest.fixture
def torch_exports(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per call of ``torch.export.export`` in this test: the real export, counted
    (a network logged as an MLflow model is exported through it)."""
    import torch

    calls: list[int] = []
    real = torch.export.export

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.export, "export", counted)
    return calls


@pytest.fixture
def write_spec(tmp_path: Path):
    """Write spec text into tmp_path and return its path as a string."""

    def write(text: str = TINY, name: str = "tiny.toml") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow sqlite store, migrated once (creating the schema takes seconds)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def tracking_uri(tmp_path: Path, migrated_store: Path) -> str:
    """A real, empty MLflow store of this test's own under tmp_path/mlruns."""
    store = tmp_path / "mlruns" / "mlflow.db"
    store.parent.mkdir()
    shutil.copy(migrated_store, store)
    return f"sqlite:///{store}"


def services_required() -> bool:
    """True where a missing service is a failure (``GROKEXP_REQUIRE_SERVICES=1``, as in CI)."""
    return os.environ.get(REQUIRE_SERVICES, "").strip() not in ("", "0")


def require_service(reason: str) -> NoReturn:
    """A test's service (Chromium, PostgreSQL, a read-only store...) could not be set up.

    Skips with ``reason`` (pytest -rs prints it); under ``GROKEXP_REQUIRE_SERVICES=1`` fails
    with it instead, so CI cannot go green on a test that never ran.
    """
    if services_required():
        pytest.fail(f"{reason} [{REQUIRE_SERVICES}=1: a service that should be here is not]",
                    pytrace=False)
    pytest.skip(reason)


def import_service(module: str, reason: str) -> ModuleType:
    """Import ``module``, or :func:`require_service` with ``reason`` and the import error."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        require_service(f"{reason}: {err}")


# --- processes a test starts: every wait has a deadline and waits for a state -------------

def wait_until(condition, timeout_s: float, what: str, proc=None, poll_s: float = 0.05,
               log: Path | None = None):
    """Poll ``condition()`` until it returns something truthy, and return that.

    Fails (with ``what``, and the tail of ``log``, the file ``proc`` writes to, if given) when
    ``timeout_s`` passes first, or when ``proc`` exits first; the pause between polls only
    paces the loop, the wait itself is for the state.
    """
    import time

    def said(*texts: str | None) -> str:
        if log is not None and log.is_file():
            texts = (*texts, log.read_text(errors="replace"))
        text = "\n".join(x[-4000:] for x in texts if x)
        return f"; it wrote:\n{text}" if text else ""

    deadline = time.monotonic() + timeout_s
    while True:
        found = condition()
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate(timeout=30)  # what its pipes held, if it had any
            pytest.fail(f"{what}: the process exited with {proc.returncode} first"
                        + said(out, err), pytrace=False)
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout_s:g} s" + said(), pytrace=False)
        time.sleep(poll_s)


def read_until(proc, stream, predicate, timeout_s: float, what: str) -> tuple[str, str]:
    """Read ``stream`` (a pipe of ``proc``) until a line satisfies ``predicate``.

    Returns ``(line, text)``: that line and everything read from the pipe so far (which a
    later ``communicate()`` will not see again). Reads through ``select`` with a deadline, so a
    child that hangs or stays silent fails the test instead of blocking it.
    """
    import select
    import time

    fd = stream.fileno()
    deadline = time.monotonic() + timeout_s
    data = b""
    while True:
        lines = data.decode(errors="replace").splitlines(keepends=True)
        for line in lines:
            if line.endswith("\n") and predicate(line):
                return line, data.decode(errors="replace")
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"{what}: not within {timeout_s:g} s; read so far:\n"
                        f"{data.decode(errors='replace')[-4000:]}", pytrace=False)
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                proc.wait(timeout=30)
                pytest.fail(f"{what}: the process closed its output (exit {proc.returncode})"
                            f" first; it wrote:\n{data.decode(errors='replace')[-4000:]}",
                            pytrace=False)
            data += chunk


def stop_group(proc, timeout_s: float = 30.0) -> None:
    """SIGTERM a process started with ``start_new_session=True`` and every process of its
    group; wait (bounded) until the group is gone, then SIGKILL whatever is left of it."""
    import signal
    import subprocess
    import time

    def signal_group(sig) -> bool:
        try:
            os.killpg(proc.pid, sig)
            return True
        except ProcessLookupError:
            return False

    signal_group(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + timeout_s
    while signal_group(0) and time.monotonic() < deadline:  # the leader's workers, if any
        time.sleep(0.05)
    signal_group(signal.SIGKILL)
    proc.wait(timeout=timeout_s)


@pytest.fixture
def one_thread():
    """Tiny models train fastest on one thread; more only contend on a shared 2-core box."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(url: str) -> bool:
    """Whether an MLflow server at ``url`` answers ``/health`` with 200."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp* writes them) with a socket listening on
    ``port``: empty when nothing listens."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


POSTGRES = Path(__file__).resolve().parent / "services" / "postgres.sh"


def start_postgres() -> tuple[str, str]:
    """A throwaway PostgreSQL cluster (tests/services/postgres.sh): its superuser URL and
    folder. Skips, or fails under GROKEXP_REQUIRE_SERVICES, when it cannot be started."""
    import_service("psycopg", "the PostgreSQL driver is not installed (the postgres extra)")
    try:
        proc = subprocess.run(["bash", str(POSTGRES), "start"], capture_output=True, text=True,
                              timeout=600)  # may apt-get install postgresql first
    except (OSError, subprocess.TimeoutExpired) as err:
        require_service(f"PostgreSQL could not be started: {err}")
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        require_service(f"PostgreSQL could not be installed or started (tests/services/"
                        f"postgres.sh start exited {proc.returncode}): {why}")
    url, directory = proc.stdout.split()[-2:]
    return url, directory


def stop_postgres(directory: str) -> None:
    subprocess.run(["bash", str(POSTGRES), "stop", directory], capture_output=True, timeout=120)
