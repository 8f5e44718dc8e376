"""`grokexp ui` seen by a person: headless Chromium over a store holding a real run.

Needs Debian's ``chromium`` (tests/services/browser.sh installs it, and ``make test`` runs it)
and the ``playwright`` package (the ``browser`` extra); without them the test is skipped with the
reason, or fails under GROKEXP_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import (
    free_port,
    healthy,
    import_service,
    listening_addresses,
    require_service,
    stop_group,
    wait_until,
)

from grokexp.cli import main

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def browser_tools():
    """Debian's chromium and Playwright, or a skip (a failure in CI) that says what is missing."""
    chromium = shutil.which("chromium")
    if chromium is None:
        require_service("no chromium on PATH (tests/services/browser.sh installs Debian's)")
    api = import_service("playwright.sync_api",
                         "the playwright package is not installed (pip install -c "
                         "constraints.txt -e '.[browser]')")
    return chromium, api.sync_playwright


@pytest.fixture
def ui_server(write_spec, tracking_uri, tmp_path):
    """A real tiny run in the store, then `grokexp ui` on a free loopback port."""
    ran = CliRunner().invoke(main, ["run", write_spec(), "--tracking-uri", tracking_uri,
                                    "--json"])
    assert ran.exit_code == 0, ran.output
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    log = tmp_path / "ui.log"  # a file, not a pipe: the server's chatter can never block it
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "grokexp", "ui", "--tracking-uri",
                                 tracking_uri, "--port", str(port)], env=env, cwd=tmp_path,
                                stdout=out, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
    try:
        def link_line() -> str | None:
            return next((line for line in log.read_text().splitlines()
                         if "workflowType=machine_learning" in line), None)

        line = wait_until(link_line, 120, "grokexp ui printing its link", proc, log=log)
        link = line.split(": ", 1)[1].strip()
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: healthy(url), 120, "the MLflow server answering /health", proc,
                   log=log)
        yield link, port, result
    finally:
        stop_group(proc)  # the server and its workers: our own process group


def test_ui_shows_runs_metrics_and_figures_in_a_real_browser(browser_tools, ui_server,
                                                             tmp_path):
    chromium, sync_playwright = browser_tools
    link, port, result = ui_server
    run_id = result["run_ids"][0]
    assert link.startswith(f"http://127.0.0.1:{port}/#/experiments/{result['experiment_id']}")
    assert listening_addresses(port) <= {"0100007F"}, "the UI must listen on 127.0.0.1 only"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(60_000)
        page.goto(link)
        # the runs table of the model-training view, not the GenAI overview
        page.get_by_text("1 matching run").wait_for()
        assert "/runs" in page.url and "overview" not in page.url
        page.get_by_text("Run Name", exact=True).first.wait_for()
        page.screenshot(path=str(tmp_path / "1-runs.png"))
        page.locator(f'a[href*="/runs/{run_id}"]').first.click()
        page.get_by_text(run_id).first.wait_for()
        page.get_by_role("tab", name="Model metrics").click()
        # a run logs dozens of metrics; filter the charts down to the one we look for
        page.get_by_placeholder("Search metric charts").first.fill("test_acc")
        page.get_by_text("test_acc").first.wait_for()
        # the chart has drawn its line: a plotly trace with a path (not a time window)
        page.locator(".js-plotly-plot .scatterlayer path.js-line").first.wait_for()
        page.screenshot(path=str(tmp_path / "2-metrics.png"), full_page=True)
        page.get_by_role("tab", name="Artifacts").click()
        page.get_by_text("figures").first.click()
        page.get_by_text("accuracy.png").first.click()
        image = page.locator('img[alt="figures/accuracy.png"]').first
        image.wait_for()
        page.wait_for_function("img => img.complete && img.naturalWidth > 100",
                               arg=image.element_handle())
        page.screenshot(path=str(tmp_path / "3-figure.png"))
        browser.close()
    for name in ("1-runs.png", "2-metrics.png", "3-figure.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    print(f"screenshots in {tmp_path}")
