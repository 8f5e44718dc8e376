"""Bad input, generated: every spec, text or --set either validates or fails with lines.

Property: validation returns a Spec or raises SpecError whose every line reads
``<source>: <path>: <message>``; nothing else escapes (no traceback, no other exception).
"""

from __future__ import annotations

import json
import math
import re

import tomli_w
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grokexp.budget import GIB, estimate_bytes
from grokexp.cli import main
from grokexp.errors import SpecError
from grokexp.spec import Spec
from grokexp.spec_io import load_spec, set_dotted, validate_spec
from grokexp.sweep import expand_members

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
]
SOURCE_LINE = re.compile(r"^(x\.toml|x\.json|--set .*?): (?:sweep: )?\S.*?: .+$|^--set .+: .+$",
                         re.DOTALL)

scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.booleans(),
    st.sampled_from(["add", "div", "relu", "uniform", "constant", "cpu", "cuda:1", "none"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)


def _check(make) -> Spec | None:
    try:
        spec = make()
    except SpecError as err:
        assert err.problems, "an error needs at least one line"
        for line in err.problems:
            assert "\n" not in line and line.count(": ") >= 1, line
            assert "Traceback" not in line
        return None
    assert isinstance(spec, Spec)
    try:
        members = expand_members(spec, "x.toml")
    except SpecError as err:
        assert all(line.startswith("x.toml: sweep: ") for line in err.problems), err.problems
        return None
    assert members
    for member in members[:3]:
        assert estimate_bytes(member.spec, len(members)) > 0
    return spec


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(PATHS), values, max_size=6))
def test_generated_spec_dicts_validate_or_name_their_fields(changes):
    raw: dict = {"name": "gen"}
    for path, value in changes.items():
        try:
            set_dotted(raw, path, value)
        except SpecError:
            continue  # a path through a value: the dict itself cannot be built that way
    spec = _check(lambda: validate_spec(raw, "x.toml"))
    if spec is None:
        return
    for path, value in changes.items():  # what validated is what was asked for
        if path == "train.lr" and isinstance(value, float) and math.isfinite(value):
            assert spec.train.lr == value


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_toml_and_json_text_never_escapes(text):
    _check(lambda: load_spec(text, "x.toml"))
    _check(lambda: load_spec(text, "x.json"))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(PATHS), values, max_size=5))
def test_generated_toml_and_json_files(changes):
    raw: dict = {"name": "gen"}
    for path, value in changes.items():
        try:
            set_dotted(raw, path, value)
        except SpecError:
            continue
    try:
        toml_text = tomli_w.dumps(raw)
    except (TypeError, ValueError):  # e.g. NaN keys or types TOML has no syntax for
        toml_text = None
    if toml_text is not None:
        _check(lambda: load_spec(toml_text, "x.toml"))
    json_text = json.dumps(raw)  # NaN/Infinity are JSON extensions Python accepts
    _check(lambda: load_spec(json_text, "x.json"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.text(max_size=40),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(PATHS), st.text(max_size=20)),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(PATHS),
              st.sampled_from(["1", "-1", "1e400", "nan", "inf", "[1, 2]", "{a = 1}",
                               '"x"', "true", "[]", "0", "1e-3", "[[1]]", "9" * 30])),
), max_size=4))
def test_set_strings_validate_or_name_their_fields(overrides):
    _check(lambda: load_spec('name = "gen"\n', "x.toml", overrides))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.builds(lambda k, v: f"{k}={v}", st.sampled_from(PATHS),
                          st.text(max_size=12)), max_size=3))
def test_cli_exits_0_or_2_without_traceback(tmp_path_factory, overrides):
    spec = tmp_path_factory.mktemp("spec") / "x.toml"
    spec.write_text('name = "gen"\n')
    args = ["validate", str(spec)]
    for item in overrides:
        args += ["--set", item]
    result = CliRunner().invoke(main, args)
    assert result.exit_code in (0, 2), (result.output, result.exception)
    assert "Traceback" not in result.output


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
