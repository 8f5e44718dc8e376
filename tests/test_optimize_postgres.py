"""Two `grokexp optimize` workers on a PostgreSQL study, as on separate machines.

The fixture starts a throwaway PostgreSQL cluster on 127.0.0.1 with tests/services/postgres.sh
(which installs Debian's ``postgresql`` package when it is missing and it may); when that is
impossible the test is skipped and says why.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from optimize_helpers import OPT_TINY, two_workers

SCRIPT = Path(__file__).parent / "services" / "postgres.sh"


@pytest.fixture(scope="module")
def postgres_url():
    try:
        proc = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True,
                              timeout=900)
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"PostgreSQL could not be started: {err}")
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"PostgreSQL could not be installed or started: {why}")
    url, directory = proc.stdout.split()[-2:]
    yield url
    subprocess.run(["bash", str(SCRIPT), "stop", directory], capture_output=True, timeout=120)


def test_two_workers_share_one_postgresql_study(postgres_url, write_spec, tracking_uri,
                                                tmp_path):
    pytest.importorskip("psycopg", reason="pip install 'grokexp[postgres]'")
    assert postgres_url.startswith("postgresql://") and "@127.0.0.1:" in postgres_url
    spec = write_spec(OPT_TINY, "opt.toml")
    facts = two_workers(spec, postgres_url, tracking_uri, tmp_path)
    assert facts["study"].user_attrs["mlflow_parent_run_id"]
