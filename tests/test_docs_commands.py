"""Every command the documentation shows is one the CLI takes.

Each line of a fenced code block in README.md or docs/**/*.md that starts with ``grokexp ``
(or ``$ grokexp ``) is split as a shell would and parsed by click against the real command
tree, options, arguments and their counts, without running it. The cheap ones run for real:
``--help``, ``validate`` and ``schema``, and ``run`` of a spec in the repository, shortened
to a few epochs, into a store under tmp_path.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from grokexp.cli import main

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^\s*(```|~~~)")
SHELL_BREAKS = {">", ">>", "2>", "2>&1", "|", "&&", "||", ";", "&", "<"}


def documented_commands() -> list[tuple[str, int, str]]:
    """(page, line number, command line) for every ``grokexp`` line in a fenced block."""
    found = []
    for page in PAGES:
        inside = False
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            if FENCE.match(line):
                inside = not inside
                continue
            text = line.strip().removeprefix("$ ")
            if inside and text.startswith("grokexp "):
                found.append((str(page.relative_to(ROOT)), number, text))
    return found


def words(command: str) -> list[str]:
    """The arguments after ``grokexp``: comments dropped, cut at a pipe or redirection."""
    tokens = shlex.split(command, comments=True)[1:]
    for i, token in enumerate(tokens):
        if token in SHELL_BREAKS:
            return tokens[:i]
    return tokens


def parse(args: list[str]) -> click.Command | None:
    """Parse ``args`` with click as ``grokexp`` would; the subcommand, or None for --help and
    --version. A usage error (unknown command or option, missing or extra argument, a value
    of the wrong type) raises."""
    try:
        if not args or args[0].startswith("-"):
            main.make_context("grokexp", list(args))
            return None
        command = main.get_command(click.Context(main), args[0])
        if command is None:
            raise click.UsageError(f"no such command {args[0]!r}")
        with main.make_context("grokexp", [args[0]], resilient_parsing=True) as parent:
            command.make_context(args[0], list(args[1:]), parent=parent)
        return command
    except click.exceptions.Exit as done:  # --help, --version
        assert done.exit_code == 0
        return None


COMMANDS = documented_commands()


def test_the_docs_show_every_command():
    shown = {words(line)[0] for _, _, line in COMMANDS if words(line)}
    assert set(main.commands) <= shown, f"undocumented: {set(main.commands) - shown}"
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize(("page", "number", "line"), COMMANDS,
                         ids=[f"{p}:{n}" for p, n, _ in COMMANDS])
def test_documented_command_parses(page, number, line):
    try:
        parse(words(line))
    except click.UsageError as err:
        pytest.fail(f"{page}:{number}: {line!r} does not parse: {err.format_message()}")


def test_a_wrong_command_would_be_caught():
    """The check itself can fail: what click refuses, parse() refuses."""
    for bad in (["forecast", "--runs"], ["run", "a.toml", "b.toml"], ["optimize"],
                ["nope"], ["run", "--nope"], ["optimize", "x.toml", "--batch", "N"]):
        with pytest.raises(click.UsageError):
            parse(bad)
    assert parse(["forecast", "--runs", "A", "B", "C"]) is main.commands["forecast"]


def runnable(line: str) -> bool:
    args = words(line)
    if "--help" in args or "-h" in args or args[:1] in (["validate"], ["schema"]):
        return True
    return args[:1] == ["run"] and len(args) > 1 and (ROOT / args[1]).is_file()


RUNNABLE = sorted({line for _, _, line in COMMANDS if runnable(line)})


@pytest.mark.parametrize("line", RUNNABLE)
def test_documented_command_runs(line, tmp_path, tracking_uri):
    args = words(line)
    if args[0] == "run" and "--help" not in args:
        # the documented spec and options, a few epochs long, into this test's store
        args += ["--tracking-uri", tracking_uri, "--quiet", "--set", "train.epochs=2",
                 "--set", "metrics.mc_dropout=false", "--set", "metrics.drc=false",
                 "--set", "metrics.checkpoints=0"]
    before = os.getcwd()
    os.chdir(ROOT)  # specs/… paths are relative to the repository, as in the docs
    try:
        result = CliRunner().invoke(main, args)
    finally:
        os.chdir(before)
    assert result.exit_code == 0, (line, result.output, result.exception)
    assert "Traceback" not in result.output
