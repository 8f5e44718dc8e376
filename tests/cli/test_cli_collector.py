"""`grokexp run` pauses Python's garbage collector while it imports, and gives it back.

The command freezes what its imports made (see ``cli/run.py``); a process that goes on after
it (these tests, a notebook) must get its collector back as it was, with nothing frozen.
"""

from __future__ import annotations

import gc

from click.testing import CliRunner

from grokexp.cli import main


def test_the_collector_is_back_after_a_run_and_after_a_refused_spec(write_spec,
                                                                   tracking_uri) -> None:
    runner = CliRunner()
    done = runner.invoke(main, ["run", write_spec(), "--tracking-uri", tracking_uri, "--quiet",
                                "--set", "metrics.mc_dropout=false"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert gc.isenabled() and gc.get_freeze_count() == 0
    refused = runner.invoke(main, ["run", write_spec("name = 1\n", "bad.toml")],
                            catch_exceptions=False)
    assert refused.exit_code == 2, refused.output
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_collector_switched_off_before_the_run_stays_off(write_spec, tracking_uri) -> None:
    gc.disable()
    try:
        done = CliRunner().invoke(main, ["run", write_spec(), "--tracking-uri", tracking_uri,
                                         "--quiet"], catch_exceptions=False)
        assert done.exit_code == 0, done.output
        assert not gc.isenabled() and gc.get_freeze_count() == 0
    finally:
        gc.enable()
