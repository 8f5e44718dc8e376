from __future__ import annotations

import json

import pytest

from grokexp.engine.sweep import expand_members, group_by_shape
from grokexp.errors import SpecError
from grokexp.spec.io import (
    apply_overrides,
    load_spec,
    parse_override_value,
    spec_hash,
    spec_to_toml,
    validate_spec,
)


def problems(text: str, overrides=()) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(text, "x.toml", overrides)
    return info.value.problems


def test_defaults_are_the_papers_model():
    spec = load_spec('name = "p"', "p.toml")
    assert spec.task.modulus == 53 and spec.task.train_fraction == 0.5
    assert spec.model.hidden_sizes == (256,) and spec.model.embedding_dim == 128
    assert spec.train.lr == 3e-4 and spec.train.weight_decay == 1.0
    assert spec.init.resolve("hidden", "bias").scheme == "xavier_normal"
    assert spec.metrics.grok_threshold == 0.95


def test_errors_name_file_and_dotted_path():
    lines = problems('name = "x"\n[train]\nlr = -1\n[model]\nwidth = 3')
    assert "x.toml: train.lr: must be > 0.0 (got -1)" in lines
    assert "x.toml: model.width: unknown key" in lines


def test_type_and_choice_errors():
    lines = problems('name = "x"\n[task]\noperation = "pow"\nmodulus = "big"')
    assert any(line.startswith("x.toml: task.operation: must be one of") for line in lines)
    assert any(line.startswith("x.toml: task.modulus: must be an integer") for line in lines)


def test_syntax_error_is_one_line():
    lines = problems('name = "x"\n[train\n')
    assert len(lines) == 1 and lines[0].startswith("x.toml: syntax error")


def test_overrides_are_toml_literals_and_revalidated():
    spec = load_spec('name = "x"', "x.toml", ["train.weight_decay=0.5", "init.scale=3",
                                              "model.hidden=[64, 32]", "model.activation=gelu"])
    assert spec.train.weight_decay == 0.5 and spec.init.scale == 3
    assert spec.model.hidden_sizes == (64, 32) and spec.model.activation == "gelu"
    assert parse_override_value("true") is True and parse_override_value("1e-3") == 1e-3
    assert problems('name = "x"', ["train.nope=1"]) == ["--set train.nope=1: train.nope: "
                                                        "unknown key"]
    # a quoted dotted key reaches [sweep] and [optimize.space] as a file can
    spec = load_spec('name = "x"', "x.toml", ['sweep."train.split_seed"=[1, 2]',
                                              'optimize.space."train.weight_decay"='
                                              '{low = 0.1, high = 3.0, log = true}'])
    assert spec.sweep == {"train.split_seed": [1, 2]}
    assert spec.optimize is not None and spec.optimize.dims()["train.weight_decay"].log
    with pytest.raises(SpecError, match="expected dotted.key=value"):
        apply_overrides({}, ["novalue"])


def test_layer_tables_override_only_that_layer():
    spec = load_spec('name = "x"\n[init]\nscale = 2\n[init.embedding]\nshift = 0.6', "x.toml")
    emb, hid = spec.init.resolve("embedding"), spec.init.resolve("hidden")
    assert (emb.scale, emb.shift) == (2.0, 0.6)
    assert (hid.scale, hid.shift) == (2.0, 0.0)
    # biases follow their layer unless [init.<layer>.bias] says otherwise
    assert spec.init.resolve("embedding", "bias").shift == 0.6
    spec = load_spec('name = "x"\n[init.output.bias]\nscheme = "constant"\nvalue = 0',
                     "x.toml")
    assert spec.init.resolve("output", "bias").scheme == "constant"
    assert spec.init.resolve("output", "weight").scheme == "xavier_normal"


def test_scheme_parameters_are_required_where_needed():
    lines = problems('name = "x"\n[init.embedding]\nscheme = "uniform"\nlow = 0.4')
    assert lines == ["x.toml: init.embedding.high: required when scheme is 'uniform'"]
    lines = problems('name = "x"\n[init.hidden]\nscheme = "uniform"\nlow = 1\nhigh = 0')
    assert lines[0].startswith("x.toml: init.hidden.high: must be > low")
    assert problems('name = "x"\n[task]\noperation = "div"\nmodulus = 12') == [
        "x.toml: task.modulus: must be prime for 'div' (got 12)"]


def test_json_spec_and_resolved_toml_round_trip():
    spec = load_spec(json.dumps({"name": "j", "train": {"epochs": 5}}), "j.json")
    again = load_spec(spec_to_toml(spec), "again.toml")
    assert again == spec and spec_hash(again) == spec_hash(spec)
    assert spec_hash(load_spec('name = "j"', "j.toml")) != spec_hash(spec)


def test_sweep_is_a_grid_times_seeds():
    spec = load_spec('name = "s"\n[sweep]\nseeds = [0, 1]\n"init.scale" = [1, 2, 3]\n'
                     'model.hidden = [8, 16]', "s.toml")
    members = expand_members(spec)
    assert len(members) == 12
    assert {m.varied["train.seed"] for m in members} == {0, 1}
    assert members[0].spec.sweep is None and members[0].spec.init.scale == 1
    assert len(group_by_shape(members)) == 2  # hidden width differs → two populations


def test_sweep_errors_name_the_key():
    lines = problems('name = "s"\n[sweep]\n"init.scael" = [1]')
    assert lines == ["x.toml: sweep.init.scael: unknown key; did you mean sweep.init.scale?"]
    spec = load_spec('name = "s"\n[sweep]\n"train.lr" = [0.1, -1]', "s.toml")
    with pytest.raises(SpecError) as info:
        expand_members(spec, "s.toml")
    assert info.value.problems == ["s.toml: sweep: train.lr: must be > 0.0 (got -1)"]


def test_validate_spec_rejects_non_table_sections():
    with pytest.raises(SpecError) as info:
        validate_spec({"name": "x", "train": 3}, "x.toml")
    assert info.value.problems == ["x.toml: train: must be a table (got 3)"]
