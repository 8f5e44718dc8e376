"""Bad input, generated: every spec, text or --set either validates or fails with lines.

Property: validation returns a Spec or raises SpecError whose every line reads
``<source>: <path>: <message>``: the source is the file (or the ``--set`` item) the problem
came from, the path walks through the spec's fields or the keys the input holds (so a user can
find it), and the message is plain words; nothing else escapes (no traceback, no other
exception). Through ``grokexp run`` the same lines reach stderr, the exit is 2 and nothing is
written: no tracking store, no recovery folder, no file in the working directory.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

import pytest
import tomli_w
from click.testing import CliRunner
from conftest import working_in
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from grokexp.cli import main
from grokexp.engine.sweep import expand_members
from grokexp.errors import SpecError
from grokexp.run.budget import GIB, estimate_bytes
from grokexp.spec.io import load_spec, set_dotted, validate_spec
from grokexp.spec.schema import Spec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PATHS = [
    "name", "description", "task.modulus", "task.operation", "task.train_fraction",
    "model.embedding_dim", "model.hidden", "model.activation", "model.embedding_activation",
    "init.scheme", "init.scale", "init.shift", "init.std", "init.low", "init.high",
    "init.value", "init.embedding.scheme", "init.embedding.low", "init.embedding.high",
    "init.embedding.trainable", "init.output.bias.scheme", "init.hidden.std",
    "train.lr", "train.weight_decay", "train.betas", "train.epochs", "train.batch_size",
    "train.seed", "train.split_seed", "train.stop_after_generalized", "train.dropout",
    "train.device", "metrics.every", "metrics.grok_threshold", "tracking.experiment",
    "tracking.tracking_uri", "sweep.seeds", "sweep.train.lr", "sweep.init.scale",
    "sweep.model.hidden", "train.nope", "nope", "task", "model.hidden.x",
    "model.architecture", "model.d_model", "model.n_heads", "model.layer_norm",
    "init.attention.scheme", "init.unembed.trainable", "metrics.mc_sites", "tracking.log_model",
    "sweep.model.architecture",
]

scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.booleans(),
    st.sampled_from(["add", "div", "relu", "uniform", "constant", "cpu", "cuda:1", "none",
                     "transformer", "onehot_mlp", "attention", "hidden"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)

# A problem line shows these escaped, as repr() does, so that one problem stays one line: the
# C0 controls, DEL, and every other character str.splitlines() breaks a line at.
ESCAPED = {chr(c) for c in range(0x20)} | {"\x7f", "\x85", "\u2028", "\u2029"}
SYNTAX = object()  # what the format's own parser makes of text it rejects


def shown(text: str) -> str:
    return "".join(repr(c)[1:-1] if c in ESCAPED else c for c in text)


def _parts(annotation: Any) -> list[Any]:
    """The alternatives of a field's annotation (``LayerInit | None`` → both)."""
    if get_origin(annotation) in (Union, UnionType):
        return list(get_args(annotation))
    return [annotation]


def names_a_place(path: str, annotation: Any, node: Any) -> bool:
    """Whether ``path`` walks, one dotted step at a time, through fields of the spec's
    sections, positions of its fixed-length fields, or keys and list positions the input
    holds (an input key may itself hold dots)."""
    steps: list[tuple[str, Any, Any]] = []
    fields: dict[str, Any] = {}
    for part in _parts(annotation):
        if isinstance(part, type) and issubclass(part, BaseModel):
            fields.update({name: info.annotation for name, info in part.model_fields.items()})
        elif get_origin(part) is tuple and Ellipsis not in get_args(part):  # e.g. the betas
            steps += [(str(i), arg, None) for i, arg in enumerate(get_args(part))]
    steps += [(name, sub, node.get(name) if isinstance(node, dict) else None)
              for name, sub in fields.items()]
    if isinstance(node, dict):
        steps += [(shown(str(key)), fields.get(key), child) for key, child in node.items()]
    elif isinstance(node, list):
        steps += [(str(i), None, child) for i, child in enumerate(node)]
    for name, sub, child in steps:
        if path == name or (path.startswith(name + ".")
                            and names_a_place(path[len(name) + 1:], sub, child)):
            return True
    return False


def check_message(message: str, line: str) -> None:
    assert message.strip(), line
    assert not message.startswith("Value error"), line  # pydantic's wording leaking through
    assert "errors.pydantic.dev" not in message and "Traceback" not in message, line


def check_field_line(line: str, source: str, raw: Any) -> str:
    """``<source>: <path>: <message>`` with a path into the spec or the input; the path."""
    assert "\n" not in line and "\r" not in line, line
    assert len(line.splitlines()) == 1, line
    assert line.startswith(f"{source}: "), (source, line)
    rest = line[len(source) + 2:]
    cuts = [i for i in range(len(rest)) if rest.startswith(": ", i)]
    for cut in cuts:
        path, message = rest[:cut], rest[cut + 2:]
        if names_a_place(path, Spec, raw):
            check_message(message, line)
            return path
    raise AssertionError(f"names no field of the spec or of the input: {line!r}")


def check_set_line(line: str, overrides: list[str], raw: Any = None) -> None:
    """A problem that came from a ``--set`` item names it: ``--set <item>: <what is wrong>``
    (a malformed item, or a value that is no TOML) or ``--set <item>: <path>: <message>``
    (a key or value it set), the item as typed, or JSON-quoted when it holds characters that
    do not print."""
    for item in overrides:
        prefix = f"--set {item if item.isprintable() else json.dumps(item)}: "
        if not line.startswith(prefix):
            continue
        rest = line[len(prefix):]
        if rest == "expected dotted.key=value" or rest.startswith("not a TOML value ("):
            return
        key = item.partition("=")[0].strip()
        through = rest.removesuffix(": is a value, not a table")
        if through != rest and (key + ".").startswith(through + "."):
            return
        cuts = [i for i in range(len(rest)) if rest.startswith(": ", i)]
        for cut in cuts:
            path, message = rest[:cut], rest[cut + 2:]
            if raw is not None and names_a_place(path, Spec, raw):
                check_message(message, line)
                return
    raise AssertionError(f"not a --set line of {overrides}: {line!r}")


def check_lines(lines: list[str], source: str, raw: Any, overrides: list[str]) -> None:
    """Every line a field line of ``source`` or a line naming a malformed ``--set`` item."""
    assert lines, "an error needs at least one line"
    for line in lines:
        if line.startswith("--set "):
            check_set_line(line, overrides, raw)
        else:
            check_field_line(line, source, raw)


def _check(make, source: str, raw: Any, overrides: Sequence[str] = ()) -> Spec | None:
    try:
        spec = make()
    except SpecError as err:
        check_lines(err.problems, source, raw, list(overrides))
        return None
    assert isinstance(spec, Spec)
    try:
        members = expand_members(spec, source)
    except SpecError as err:
        assert all(line.startswith(f"{source}: sweep: ") for line in err.problems), err.problems
        check_lines(err.problems, source, raw, [])
        return None
    assert members
    for member in members[:3]:
        assert estimate_bytes(member.spec, len(members)) > 0
    return spec


def parsed(text: str, source: str) -> Any:
    """The text as the format's own parser reads it, or SYNTAX."""
    try:
        return json.loads(text) if source.endswith(".json") else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError):  # JSONDecodeError is a ValueError
        return SYNTAX


def check_text(text: str, source: str) -> None:
    raw = parsed(text, source)
    try:
        load_spec(text, source)
    except SpecError as err:
        if raw is SYNTAX:
            assert len(err.problems) == 1, err.problems
            line = err.problems[0]
            assert line.startswith(f"{source}: syntax error: "), line
            check_message(line.removeprefix(f"{source}: syntax error: "), line)
        elif not isinstance(raw, dict):  # a file-level problem: there is no field to name
            assert err.problems == [f"{source}: the top level must be a table"]
        else:
            check_lines(err.problems, source, raw, [])
    else:
        assert isinstance(raw, dict), "grokexp accepted what the format's own parser rejects"


def with_overrides(text: str, overrides: list[str], source: str = "x.toml") -> dict[str, Any]:
    """What the README says ``--set`` does: each value a TOML literal, else a bare string,
    merged at its dotted key (items that cannot be merged are left out here)."""
    raw = json.loads(text) if source.endswith(".json") else tomllib.loads(text)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            continue
        try:
            literal = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            literal = value.strip()
        try:  # a TOML dotted key: quoted parts may hold dots
            tree, parts = tomllib.loads(f"{key.strip()} = 0"), []
        except tomllib.TOMLDecodeError:
            continue
        if not tree:  # the key is a TOML comment ('#...'): it names no field
            continue
        while isinstance(tree, dict):
            (part, tree), = tree.items()
            parts.append(part)
        *parents, leaf = parts
        node: Any = raw
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node[leaf] = literal
    return raw


def _generated(changes: dict[str, Any]) -> dict[str, Any]:
    """A spec dict named "gen" with each generated value set at its dotted path; a path
    through a value is left out (the dict itself cannot be built that way)."""
    raw: dict[str, Any] = {"name": "gen"}
    for path, value in changes.items():
        try:
            set_dotted(raw, path, value)
        except SpecError:
            continue
    return raw


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(PATHS), values, max_size=6))
def test_generated_spec_dicts_validate_or_name_their_fields(changes):
    raw = _generated(changes)
    spec = _check(lambda: validate_spec(raw, "x.toml"), "x.toml", raw)
    if spec is None:
        return
    for path, value in changes.items():  # what validated is what was asked for
        if path == "train.lr" and isinstance(value, float) and math.isfinite(value):
            assert spec.train.lr == value


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_toml_and_json_text_never_escapes(text):
    check_text(text, "x.toml")
    check_text(text, "x.json")


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(PATHS), values, max_size=5))
def test_generated_toml_and_json_files(changes):
    raw = _generated(changes)
    try:
        toml_text = tomli_w.dumps(raw)
    except (TypeError, ValueError):  # e.g. NaN keys or types TOML has no syntax for
        toml_text = None
    if toml_text is not None:
        _check(lambda: load_spec(toml_text, "x.toml"), "x.toml", tomllib.loads(toml_text))
    json_text = json.dumps(raw)  # NaN/Infinity are JSON extensions Python accepts
    _check(lambda: load_spec(json_text, "x.json"), "x.json", json.loads(json_text))


OVERRIDES = st.lists(st.one_of(
    st.text(max_size=40),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(PATHS), st.text(max_size=20)),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(PATHS),
              st.sampled_from(["1", "-1", "1e400", "nan", "inf", "[1, 2]", "{a = 1}",
                               '"x"', "true", "[]", "0", "1e-3", "[[1]]", "9" * 30])),
), max_size=4)


@settings(max_examples=300, deadline=None)
@given(OVERRIDES)
def test_set_strings_validate_or_name_their_fields(overrides):
    text = 'name = "gen"\n[train]\nlr = 1e-3\n'  # a value to set a key through
    _check(lambda: load_spec(text, "x.toml", overrides), "x.toml",
           with_overrides(text, overrides), overrides)


MEMORY_LINE = re.compile(r"error: population of \d+ member\(s\) \(task\.modulus=\d+, "
                         r"model\.embedding_dim=\d+, model\.hidden=\[[\d, ]+\]\) needs "
                         r"~[\d.]+ GiB, limit 0\.0 GiB \(--memory-limit\); .+")


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@settings(max_examples=40, deadline=None)
@given(OVERRIDES)
def test_cli_run_refuses_with_field_lines_and_writes_nothing(tmp_path_factory, overrides):
    """Every spec ``grokexp run`` gets here is refused (exit 2): a bad one with its lines, a
    good one by a memory limit too small for any model; so none may leave anything behind."""
    work = tmp_path_factory.mktemp("cli")
    text = 'name = "gen"\n[train]\nlr = 1e-3\n'
    spec = work / "x.toml"
    spec.write_text(text)
    store = work / "store"
    args = ["run", str(spec), "--tracking-uri", f"sqlite:///{store / 'mlflow.db'}",
            "--memory-limit", "0.0000001"]
    for item in overrides:
        args += ["--set", item]
    with working_in(work / "cwd") as cwd:
        result = CliRunner().invoke(main, args)
    assert files_under(cwd) == []  # no recovery folder, no mlruns, nothing
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    if lines and lines[0].startswith("error: population"):
        assert len(lines) == 1 and MEMORY_LINE.fullmatch(lines[0]), lines
    else:
        check_lines(lines, str(spec), with_overrides(text, overrides), overrides)
    assert not store.exists()
    assert files_under(work) == ["cwd", "x.toml"]


CASES = [  # (file name, its text, --set items, the exact lines on stderr)
    ("x.toml", 'name = "bad"\n[train]\nlr = -1\n', [],
     ["{spec}: train.lr: must be > 0.0 (got -1)"]),
    ("x.toml", 'name = "bad"\n[train]\nnope = 1\nlr = "fast"\n', [],
     ['{spec}: train.lr: must be a number (got "fast")', "{spec}: train.nope: unknown key"]),
    ("x.json", '{"name": "j", "task": {"modulus": 1, "operation": "pow"}}', [],
     ["{spec}: task.modulus: must be >= 2 (got 1)",
      "{spec}: task.operation: must be one of 'add', 'sub', 'mul', 'div', 'x**2+y**2', "
      "'x**2+x*y+y**2', 'x**3+x*y' or 's5' (got \"pow\")"]),
    ("x.toml", 'name = "s"\n', ["model.hidden=[8, 0]"],
     ["--set model.hidden=[8, 0]: model.hidden: widths must be between 1 and 65536"]),
    ("x.toml", 'name = "s"\n', ["train.betas=[0.9, 1.5]"],
     ["--set train.betas=[0.9, 1.5]: train.betas: each beta must be in [0, 1)"]),
    # a typo on the command line is blamed on the --set item, with the nearest known keys
    ("x.toml", 'name = "s"\n', ["train.weigth_decay=0.5"],
     ["--set train.weigth_decay=0.5: train.weigth_decay: unknown key; "
      "did you mean train.weight_decay?"]),
    ("x.toml", 'name = "s"\n[train]\nweigth_decay = 0.5\n', [],
     ["{spec}: train.weigth_decay: unknown key; did you mean train.weight_decay?"]),
    ("x.toml", 'name = "s"\n', ['sweep."train.weigth_decay"=[1, 2]'],
     ['--set sweep."train.weigth_decay"=[1, 2]: sweep.train.weigth_decay: unknown key; '
      "did you mean sweep.train.weight_decay?"]),
    ("x.toml", 'name = "s"\n[optimize.space]\n"train.lr" = {low = 0.1, high = 1, lgo = true}\n',
     [], ["{spec}: optimize.space.train.lr.lgo: unknown key; did you mean optimize.space."
          "train.lr.low or optimize.space.train.lr.log?"]),
    # numbers are numbers: no boolean or quoted number slips through as one
    ("x.toml", 'name = "s"\n', ["train.lr=true"],
     ["--set train.lr=true: train.lr: must be a number (got true)"]),
    ("x.toml", 'name = "s"\n', ["train.weight_decay=false"],
     ["--set train.weight_decay=false: train.weight_decay: must be a number (got false)"]),
    ("x.toml", 'name = "s"\n[task]\nmodulus = "23"\n', [],
     ['{spec}: task.modulus: must be an integer (got "23")']),
    ("x.json", '{"name": "s", "metrics": {"drc_rates": [0.1, true]}}', [],
     ["{spec}: metrics.drc_rates: each value must be a number (got true)"]),
    # one bad value, one line
    ("x.toml", 'name = "s"\n', ["model.hidden=[128,abc]"],
     ['--set model.hidden=[128,abc]: not a TOML value (inside a list or table, quote '
      'strings: ["a", "b"])']),
    ("x.toml", 'name = "s"\n', ['model.hidden="wide"'],
     ['--set model.hidden="wide": model.hidden: must be an integer (got "wide")']),
    ("x.toml", 'name = "s"\n[init.embedding]\nscheme = "uniform"\n', [],
     ["{spec}: init.embedding.low: required when scheme is 'uniform'",
      "{spec}: init.embedding.high: required when scheme is 'uniform'"]),
    ("x.toml", 'name = "s"\n[init.output.bias]\nscheme = "uniform"\nlow = 1\nhigh = 0\n', [],
     ["{spec}: init.output.bias.high: must be > low (1.0) (got 0.0)"]),
    ("x.toml", 'name = "s"\n[sweep]\n"train.nope" = [1]\n', [],
     ["{spec}: sweep.train.nope: unknown key"]),
    ("x.toml", 'name = "s"\n[sweep]\n"train.lr" = 3\n', [],
     ["{spec}: sweep: 'train.lr' must be a non-empty list of values"]),
    ("x.toml", 'name = "s"\n[task]\noperation = "div"\nmodulus = 12\n', [],
     ["{spec}: task.modulus: must be prime for 'div' (got 12)"]),
    ("x.toml", 'name = "s"\n[optimize.space]\n"train.seed" = {low = 0, high = 3}\n', [],
     ["{spec}: optimize.space.train.seed: cannot be searched (seeds are optimize.seeds)"]),
    ("x.toml", 'name = "s"\n[train]\nlr = 1e-3\n', ["train.lr.x=1"],
     ["--set train.lr.x=1: train.lr: is a value, not a table"]),
    ("x.toml", 'name = "s"\n', ["train.lr"], ["--set train.lr: expected dotted.key=value"]),
    # file-level problems: no field to name, so the line is <source>: <message>
    # (FILE_LEVEL below)
    ("x.toml", "name = \n", [], ["{spec}: syntax error: Invalid value (at line 1, column 8)"]),
    ("x.json", "[1, 2]", [], ["{spec}: the top level must be a table"]),
    ("x.yaml", "name: s\n", [], ["{spec}: expected a .toml or .json file"]),
]


FILE_LEVEL = ("syntax error", "the top level", "expected a .toml")


@pytest.mark.parametrize(("file", "text", "sets", "expected"), CASES,
                         ids=[f"{c[0]}:{i}" for i, c in enumerate(CASES)])
def test_run_prints_source_field_and_message_and_starts_nothing(
        tmp_path, tracking_uri, file, text, sets, expected):
    from mlflow.tracking import MlflowClient

    spec = tmp_path / file
    spec.write_text(text)
    store = Path(tracking_uri.removeprefix("sqlite:///")).parent
    before = files_under(store)
    args = ["run", str(spec), "--tracking-uri", tracking_uri]
    for item in sets:
        args += ["--set", item]
    with working_in(tmp_path / "cwd") as cwd:
        result = CliRunner().invoke(main, args)
    assert files_under(cwd) == []
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines() == [line.format(spec=spec) for line in expected]
    if not any(f"{{spec}}: {kind}" in expected[0] for kind in FILE_LEVEL):
        # the exact lines also pass the generated tests' check
        check_lines(result.stderr.splitlines(), str(spec), with_overrides(text, sets, file),
                    sets)
    assert files_under(store) == before  # no artifacts folder, no journal
    client = MlflowClient(tracking_uri=tracking_uri)
    assert [e.name for e in client.search_experiments()] == ["Default"]
    assert client.search_runs(["0"]) == []


def test_oversized_population_is_refused_before_anything_is_allocated(write_spec,
                                                                       tracking_uri):
    from conftest import TINY

    spec = write_spec(TINY.replace("modulus = 11", "modulus = 4093"))
    result = CliRunner().invoke(main, ["run", spec, "--tracking-uri", tracking_uri])
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert re.fullmatch(r"error: population of 1 member\(s\) \(task\.modulus=4093, .*\) needs "
                        r"~[\d.]+ GiB, limit [\d.]+ GiB \(80% of available memory\); .*",
                        line), line
    from mlflow.tracking import MlflowClient

    assert MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name("tiny") is None
    small = CliRunner().invoke(main, ["run", write_spec(), "--tracking-uri", tracking_uri,
                                      "--memory-limit", "0.00001"])
    assert small.exit_code == 2 and "limit 0.0 GiB (--memory-limit)" in small.output


def test_memory_estimate_grows_with_every_size():
    no_probe = ["metrics.mc_dropout=false"]  # the MC-dropout chunk has a fixed floor
    base = load_spec('name = "m"\n', "m.toml", no_probe)
    reference = estimate_bytes(base, 1)
    assert reference < 0.05 * GIB  # the paper's model is small
    for change in ("task.modulus=97", "model.embedding_dim=512", "model.hidden=1024",
                   "train.batch_size=2048"):
        bigger = load_spec('name = "m"\n', "m.toml", [*no_probe, change])
        assert estimate_bytes(bigger, 1) > reference, change
    assert estimate_bytes(base, 64) > 32 * reference
    with_probe = load_spec('name = "m"\n', "m.toml")
    assert estimate_bytes(with_probe, 1) > reference


def test_huge_sweeps_are_refused_before_expansion():
    spec = load_spec('name = "s"\n[sweep]\nseeds = ' + str(list(range(400))) +
                     '\n"train.lr" = ' + str([1e-3] * 400) + "\n", "s.toml")
    try:
        expand_members(spec, "s.toml")
    except SpecError as err:
        assert err.problems == ["s.toml: sweep: 160000 members, more than 100000"]
    else:
        raise AssertionError("expected a SpecError")


# --- limits (issue 27): nesting, seeds, DRC rates, the memory check in every command ------

DEEP = 10_000
NESTED = [
    ("x.toml", 'name = "d"\ndescription = ' + "[" * DEEP + "]" * DEEP + "\n", []),
    ("x.json", '{"name": "d", "description": ' + "[" * DEEP + "]" * DEEP + "}", []),
    ("x.json", '{"name": "d", "task": ' + '{"a": ' * DEEP + "1" + "}" * DEEP + "}", []),
    ("x.toml", 'name = "d"\n[' + ".".join(["a"] * DEEP) + "]\n", []),
    ("x.toml", 'name = "d"\n', ["description=" + "[" * DEEP + "]" * DEEP]),
    ("x.toml", 'name = "d"\n', [".".join(["a"] * DEEP) + "=1"]),
    ("x.toml", 'name = "d"\ndescription = ' + "[" * 40 + "]" * 40 + "\n", []),
]


@pytest.mark.parametrize(("file", "text", "sets"), NESTED,
                         ids=["toml array", "json array", "json table", "toml table",
                              "--set array", "--set key", "40 deep"])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_deep_nesting_is_one_line_naming_its_source(tmp_path, tracking_uri, command, file,
                                                    text, sets):
    spec = tmp_path / file
    spec.write_text(text)
    args = [command, str(spec), *(["--tracking-uri", tracking_uri] if command == "run" else [])]
    for item in sets:
        args += ["--set", item]
    with working_in(tmp_path / "cwd") as cwd:
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output[-2000:]
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and len(lines[0]) < 300, lines
    source = "--set " if sets else f"{spec}: "
    assert lines[0].startswith(source) and lines[0].endswith(
        "nested too deeply (more than 32 levels of tables or arrays)"), lines[0]
    assert files_under(cwd) == []


def test_seeds_and_drc_rates_are_bounded():
    opt = '[optimize.space]\n"train.lr" = {low = 1e-3, high = 1e-2}\n'
    problems = {
        "optimize.seeds=1000000000": "x.toml: optimize.seeds: must be between 1 and 10000",
        f"optimize.seeds={list(range(10_001))}":
            "x.toml: optimize.seeds: must hold at most 10000 seeds (got 10001)",
        f"metrics.drc_rates={[0.5] * 1001}":
            "x.toml: metrics.drc_rates: needs at most 1000 rates (got 1001)",
    }
    for item, expected in problems.items():
        with pytest.raises(SpecError) as err:
            load_spec('name = "b"\n' + opt, "x.toml", [item])
        assert len(err.value.problems) == 1
        line = err.value.problems[0]
        assert line.startswith("--set ") and line.split(": ", 1)[1].startswith(
            expected.split(": ", 1)[1]), line
    assert load_spec('name = "b"\n' + opt, "x.toml", ["optimize.seeds=10000",
                                                      f"metrics.drc_rates={[0.5] * 1000}"])


HUGE = """
name = "baseline"
[task]
modulus = 4093
[model]
embedding_dim = 16
hidden = 32
[train]
epochs = 20
[optimize]
seeds = 1
batch = 1
[optimize.space]
"train.lr" = {low = 1e-3, high = 1e-2}
"""


def test_optimize_and_reproduce_refuse_what_run_refuses_for_memory(tmp_path, tracking_uri):
    """The spec run refuses for memory: optimize (one trial of one seed) and reproduce (a
    paper spec of that name, --quick: one seed) print the same line, exit 2, create nothing."""
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "baseline.toml").write_text(HUGE)
    store = Path(tracking_uri.removeprefix("sqlite:///")).parent
    before = files_under(store)
    lines = {}
    for command, args in {
        "run": ["run", str(specs / "baseline.toml"), "--set", "optimize.seeds=1"],
        "optimize": ["optimize", str(specs / "baseline.toml")],
        "reproduce": ["reproduce", "--quick", "--only", "baseline", "--specs-dir", str(specs),
                      "--out", "gallery"],
    }.items():
        with working_in(tmp_path / command) as cwd:
            result = CliRunner().invoke(main, [*args, "--tracking-uri", tracking_uri])
        assert result.exit_code == 2, (command, result.output)
        assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.output
        lines[command] = result.stderr
        assert files_under(cwd) == [], command  # no gallery, optuna.log, recovery folder
    assert re.fullmatch(r"error: population of 1 member\(s\) \(task\.modulus=4093, .*\) needs "
                        r"~[\d.]+ GiB, limit [\d.]+ GiB \(80% of available memory\); .*\n",
                        lines["run"]), lines["run"]
    # the limit is a share of the memory available at each command, which other processes
    # move between the three: the same line but for that number
    same = {re.sub(r"limit [\d.]+ GiB", "limit L GiB", line) for line in lines.values()}
    assert len(same) == 1, lines
    assert files_under(store) == before


def test_optimize_checks_the_largest_point_of_its_space(write_spec, tracking_uri, tmp_path):
    """A space that reaches a too-large network, and a batch × seeds population too large for
    the limit, are refused before any study is created."""
    small = HUGE.replace("modulus = 4093", "modulus = 11")
    wide = write_spec(small + '"task.modulus" = {low = 11, high = 4093}\n', "w.toml")
    with working_in(tmp_path / "a") as cwd:
        result = CliRunner().invoke(main, ["optimize", wide, "--tracking-uri", tracking_uri])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: population of 1 member(s) (task.modulus=4093, "), \
        result.stderr
    assert files_under(cwd) == []
    many = write_spec(small, "m.toml")
    with working_in(tmp_path / "b") as cwd:
        result = CliRunner().invoke(main, ["optimize", many, "--tracking-uri", tracking_uri,
                                           "--batch", "100000", "--set", "optimize.seeds=64"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: population of 6400000 member(s)"), result.stderr
    assert files_under(cwd) == []
