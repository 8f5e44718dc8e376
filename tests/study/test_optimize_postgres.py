"""Two `grokexp optimize` workers on a PostgreSQL study, as on separate machines.

The fixture starts a throwaway PostgreSQL cluster on 127.0.0.1 with tests/services/postgres.sh
(which installs Debian's ``postgresql`` package when it is missing and it may); when that is
impossible the test is skipped and says why, or fails under GROKEXP_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import pytest
from conftest import start_postgres, stop_postgres
from optimize_helpers import OPT_TINY, two_workers


@pytest.fixture(scope="module")
def postgres_url():
    url, directory = start_postgres()
    yield url
    stop_postgres(directory)


@pytest.mark.timeout(900)  # its fixture may install PostgreSQL (make test does so beforehand)
def test_two_workers_share_one_postgresql_study(postgres_url, write_spec, tracking_uri,
                                                tmp_path):
    assert postgres_url.startswith("postgresql://") and "@127.0.0.1:" in postgres_url
    spec = write_spec(OPT_TINY, "opt.toml")
    facts = two_workers(spec, postgres_url, tracking_uri, tmp_path)
    assert facts["study"].user_attrs["mlflow_parent_run_id"]
