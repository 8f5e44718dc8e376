"""The test set's own rules: a missing service skips, or fails under GROKEXP_REQUIRE_SERVICES;
every wait on a child process has a deadline."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REQUIRE_SERVICES, import_service, read_until, require_service, wait_until


def test_a_missing_service_skips_with_its_reason(monkeypatch):
    monkeypatch.delenv(REQUIRE_SERVICES, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no chromium on PATH"):
        require_service("no chromium on PATH")
    monkeypatch.setenv(REQUIRE_SERVICES, "0")
    with pytest.raises(pytest.skip.Exception):
        import_service("no_such_module_grokexp", "the driver is missing")


def test_a_missing_service_fails_where_it_is_required(monkeypatch):
    monkeypatch.setenv(REQUIRE_SERVICES, "1")
    with pytest.raises(pytest.fail.Exception, match="no chromium on PATH"):
        require_service("no chromium on PATH")
    with pytest.raises(pytest.fail.Exception, match="the driver is missing: No module named"):
        import_service("no_such_module_grokexp", "the driver is missing")
    assert import_service("json", "never").dumps([1]) == "[1]"


def _child(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_reading_a_silent_child_ends_at_its_deadline():
    proc = _child("import sys, time; print('hello', flush=True); time.sleep(60)")
    try:
        line, text = read_until(proc, proc.stdout, lambda x: x.startswith("hello"), 30, "hi")
        assert line == "hello\n" and text == "hello\n"
        with pytest.raises(pytest.fail.Exception, match="never said: not within 0.3 s"):
            read_until(proc, proc.stdout, lambda x: x.startswith("bye"), 0.3, "never said")
    finally:
        proc.kill()
        proc.communicate(timeout=30)


def test_waits_end_when_the_child_exits_first(tmp_path):
    proc = _child("import sys; print('partial', file=sys.stderr); sys.exit(3)")
    try:
        with pytest.raises(pytest.fail.Exception, match="exited with 3 first; it wrote:\npartial"):
            wait_until(lambda: False, 30, "a state", proc)
    finally:
        proc.communicate(timeout=30)
    quiet = _child("import sys; sys.exit(4)")
    try:
        with pytest.raises(pytest.fail.Exception, match="closed its output \\(exit 4\\)"):
            read_until(quiet, quiet.stdout, lambda x: True, 30, "a line")
    finally:
        quiet.communicate(timeout=30)
    with pytest.raises(pytest.fail.Exception, match="a state: not within 0.1 s"):
        wait_until(lambda: False, 0.1, "a state")
    log = tmp_path / "child.log"
    log.write_text("listening on nothing\n")
    with pytest.raises(pytest.fail.Exception, match="it wrote:\nlistening on nothing"):
        wait_until(lambda: False, 0.1, "a port", log=log)
    assert wait_until(lambda: 7, 1, "a value") == 7
