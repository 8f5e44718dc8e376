"""Two `grokexp optimize` workers on a PostgreSQL study, as on separate machines.

The fixture starts a throwaway PostgreSQL cluster on 127.0.0.1 with tests/services/postgres.sh
(which installs Debian's ``postgresql`` package when it is missing and it may); when that is
impossible the test is skipped and says why, or fails under GROKEXP_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import import_service, require_service
from optimize_helpers import OPT_TINY, two_workers

SCRIPT = Path(__file__).resolve().parents[1] / "services" / "postgres.sh"


@pytest.fixture(scope="module")
def postgres_url():
    import_service("psycopg", "the PostgreSQL driver is not installed (the postgres extra)")
    try:
        proc = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True,
                              timeout=600)  # may apt-get install postgresql first
    except (OSError, subprocess.TimeoutExpired) as err:
        require_service(f"PostgreSQL could not be started: {err}")
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        require_service(f"PostgreSQL could not be installed or started (tests/services/"
                        f"postgres.sh start exited {proc.returncode}): {why}")
    url, directory = proc.stdout.split()[-2:]
    yield url
    subprocess.run(["bash", str(SCRIPT), "stop", directory], capture_output=True, timeout=120)


@pytest.mark.timeout(900)  # its fixture may install PostgreSQL (make test does so beforehand)
def test_two_workers_share_one_postgresql_study(postgres_url, write_spec, tracking_uri,
                                                tmp_path):
    assert postgres_url.startswith("postgresql://") and "@127.0.0.1:" in postgres_url
    spec = write_spec(OPT_TINY, "opt.toml")
    facts = two_workers(spec, postgres_url, tracking_uri, tmp_path)
    assert facts["study"].user_attrs["mlflow_parent_run_id"]
