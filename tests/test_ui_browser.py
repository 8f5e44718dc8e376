"""`grokexp ui` seen by a person: headless Chromium over a store holding a real run.

Needs Debian's ``chromium`` and the ``playwright`` package (tests/services/browser.sh installs
both, and ``make test`` runs it); without them the test is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from grokexp.cli import main

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def browser_tools():
    """Debian's chromium and Playwright, or a skip that says what is missing."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no chromium on PATH (tests/services/browser.sh installs Debian's)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (tests/services/browser.sh)")
    return chromium, sync_playwright


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port`` (Linux /proc/net/tcp*)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


@pytest.fixture
def ui_server(write_spec, tracking_uri, tmp_path):
    """A real tiny run in the store, then `grokexp ui` on a free loopback port."""
    ran = CliRunner().invoke(main, ["run", write_spec(), "--tracking-uri", tracking_uri,
                                    "--json"])
    assert ran.exit_code == 0, ran.output
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "grokexp", "ui", "--tracking-uri",
                             tracking_uri, "--port", str(port)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        link = None
        for line in proc.stdout:
            if "workflowType=machine_learning" in line:
                link = line.split(": ", 1)[1].strip()
                break
        assert link is not None, "grokexp ui printed no link"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the MLflow server did not come up"
                assert proc.poll() is None, "the MLflow server exited"
                time.sleep(0.5)
        yield link, port, result
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers: our own group
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        time.sleep(1)
        try:  # whatever of that group ignored SIGTERM
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_ui_shows_runs_metrics_and_figures_in_a_real_browser(browser_tools, ui_server,
                                                             tmp_path):
    chromium, sync_playwright = browser_tools
    link, port, result = ui_server
    run_id = result["run_ids"][0]
    assert link.startswith(f"http://127.0.0.1:{port}/#/experiments/{result['experiment_id']}")
    assert _listening_addresses(port) <= {"0100007F"}, "the UI must listen on 127.0.0.1 only"
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
        page.get_by_text("test_acc").first.wait_for()
        page.wait_for_timeout(1500)  # let the chart draw its lines
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
