"""``[task]``: the operations, the modulus each needs (s5 none), and dumps that load again."""

from __future__ import annotations

import json
import typing

import pytest
import tomli_w
from click.testing import CliRunner

from grokexp.cli import main
from grokexp.errors import SpecError
from grokexp.spec.io import load_spec, spec_hash, spec_to_dict, spec_to_toml, validate_spec
from grokexp.spec.schema import Spec, TaskSpec

ARITHMETIC = ["add", "sub", "mul", "div", "x**2+y**2", "x**2+x*y+y**2", "x**3+x*y"]


def test_the_operations_are_these():
    choices = typing.get_args(TaskSpec.model_fields["operation"].annotation)
    assert sorted(choices) == sorted([*ARITHMETIC, "s5"])


def test_s5_with_a_modulus_is_one_line_naming_task_modulus():
    raw = {"name": "x", "task": {"operation": "s5", "modulus": 120}}
    with pytest.raises(SpecError) as err:
        validate_spec(raw, "x.toml")
    assert err.value.problems == ["x.toml: task.modulus: leave it out for 's5': s5 has 120 "
                                  "elements, the permutations of five (got 120)"]


def test_s5_with_a_modulus_from_the_command_line_is_blamed_on_it(tmp_path):
    spec = tmp_path / "s5.toml"
    spec.write_text('name = "s5"\n[task]\noperation = "s5"\n')
    result = CliRunner().invoke(main, ["validate", str(spec), "--set", "task.modulus=7"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "--set task.modulus=7: task.modulus: leave it out for 's5': s5 has 120 "
        "elements, the permutations of five (got 7)"]


@pytest.mark.parametrize("operation", ARITHMETIC)
def test_an_arithmetic_task_without_a_modulus_gets_53(operation):
    task = validate_spec({"name": "x", "task": {"operation": operation}}, "x.toml").task
    assert task.modulus == 53 and task.tokens == 53 and task.residues


def test_a_spec_without_a_task_is_as_before():
    spec = validate_spec({"name": "x"}, "x.toml")
    assert spec_to_dict(spec)["task"] == {"modulus": 53, "operation": "add",
                                          "train_fraction": 0.5}
    # a JSON null is a left-out key, as TOML (which has no null) would write it
    null = validate_spec({"name": "x", "task": {"modulus": None}}, "x.json")
    assert null.task.modulus == 53 and spec_hash(null) == spec_hash(spec)


def test_s5_has_120_tokens_and_no_modulus():
    task = validate_spec({"name": "x", "task": {"operation": "s5"}}, "x.toml").task
    assert task.modulus is None and task.tokens == 120 and not task.residues


def test_an_s5_spec_dumped_as_toml_or_json_validates_again():
    spec = validate_spec({"name": "s5", "task": {"operation": "s5", "train_fraction": 0.6},
                          "model": {"architecture": "transformer"}}, "s5.toml")
    assert "modulus" not in spec_to_dict(spec)["task"]
    again_toml = load_spec(spec_to_toml(spec), "again.toml")
    again_json = load_spec(json.dumps(spec_to_dict(spec)), "again.json")
    assert again_toml == spec == again_json
    assert spec_hash(again_toml) == spec_hash(spec)
    assert load_spec(tomli_w.dumps(spec_to_dict(again_json)), "x.toml") == spec


def test_div_still_needs_a_prime():
    with pytest.raises(SpecError) as err:
        validate_spec({"name": "x", "task": {"operation": "div", "modulus": 12}}, "x.toml")
    assert err.value.problems == ["x.toml: task.modulus: must be prime for 'div' (got 12)"]
    assert validate_spec({"name": "x", "task": {"operation": "div"}}, "x.toml").task.modulus \
        == 53  # prime


def test_the_schema_documents_the_modulus_as_optional():
    field = Spec.model_json_schema()["$defs"]["TaskSpec"]["properties"]["modulus"]
    assert "s5" in field["description"] and "53" in field["description"]
