"""``[model] architecture``: each architecture's keys and defaults, its init groups and dropout
sites, the errors for what it lacks, sweeps over architectures, and mlp specs unchanged."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from grokexp.cli import main
from grokexp.engine.sweep import expand_members, group_by_shape, shape_key
from grokexp.errors import SpecError
from grokexp.spec.base import flatten
from grokexp.spec.io import load_spec, spec_to_dict, spec_to_toml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SPECS = Path(__file__).resolve().parents[2] / "specs"
# the [model] keys every spec had before there were other architectures
MLP_KEYS = {"embedding_dim", "hidden", "activation", "embedding_activation"}


def spec_of(text: str, overrides=()):
    return load_spec(f'name = "a"\n{text}', "a.toml", overrides)


def problems(text: str, overrides=()) -> list[str]:
    with pytest.raises(SpecError) as info:
        spec_of(text, overrides)
    return info.value.problems


def test_each_architecture_takes_its_published_defaults():
    mlp = spec_of("").model
    assert mlp.architecture == "mlp"
    assert (mlp.embedding_dim, mlp.hidden_sizes, mlp.activation, mlp.embedding_activation) == (
        128, (256,), "relu", "none")
    # Nanda et al.'s 1-layer model: d_model 128, 4 heads, d_mlp 512, ReLU, no LayerNorm
    t = spec_of('[model]\narchitecture = "transformer"').model
    assert (t.d_model, t.n_heads, t.d_mlp, t.n_layers, t.layer_norm, t.activation) == (
        128, 4, 512, 1, False, "relu")
    one = spec_of('[model]\narchitecture = "onehot_mlp"').model
    assert (one.hidden, one.hidden_sizes, one.activation) == (256, (256,), "relu")
    one = spec_of('[model]\narchitecture = "onehot_mlp"\nhidden = [200, 200]\n'
                  'activation = "tanh"').model
    assert one.hidden_sizes == (200, 200) and one.activation == "tanh"
    power = spec_of('[model]\narchitecture = "transformer"\nn_layers = 2\nlayer_norm = true\n'
                    'activation = "gelu"').model
    assert (power.n_layers, power.layer_norm, power.activation) == (2, True, "gelu")


def test_only_the_architectures_own_keys_are_dumped():
    dumped = {name: spec_to_dict(spec_of(f'[model]\narchitecture = "{name}"'))["model"]
              for name in ("mlp", "transformer", "onehot_mlp")}
    assert set(dumped["mlp"]) == MLP_KEYS | {"architecture"}
    assert set(dumped["transformer"]) == {"architecture", "d_model", "n_heads", "d_mlp",
                                          "n_layers", "layer_norm", "activation"}
    assert set(dumped["onehot_mlp"]) == {"architecture", "hidden", "activation"}
    # and read back, each is the same spec
    spec = spec_of('[model]\narchitecture = "transformer"\nd_model = 64\nn_heads = 8')
    assert load_spec(spec_to_toml(spec), "again.toml") == spec


def test_dropout_sites_default_to_every_site_of_the_architecture():
    assert spec_of("").metrics.mc_sites == ["embedding", "hidden"]
    assert spec_of('[model]\narchitecture = "transformer"').metrics.mc_sites == [
        "embedding", "attention", "mlp"]
    assert spec_of('[model]\narchitecture = "onehot_mlp"').metrics.mc_sites == ["hidden"]
    chosen = spec_of('[model]\narchitecture = "transformer"\n[metrics]\nmc_sites = ["mlp"]')
    assert chosen.metrics.mc_sites == ["mlp"]


def test_a_site_the_architecture_lacks_is_named():
    assert problems('[model]\narchitecture = "transformer"\n[metrics]\n'
                    'mc_sites = ["hidden", "mlp"]') == [
        "a.toml: metrics.mc_sites: 'hidden': not a dropout site of architecture "
        "'transformer' (its sites: embedding, attention, mlp)"]
    assert problems('[metrics]\nmc_sites = ["attention"]') == [
        "a.toml: metrics.mc_sites: 'attention': not a dropout site of architecture 'mlp' "
        "(its sites: embedding, hidden)"]


def test_init_groups_of_every_architecture_resolve():
    spec = spec_of('[model]\narchitecture = "transformer"\n[init]\nscale = 2\n'
                   '[init.attention]\nscheme = "normal"\nstd = 0.02\n'
                   '[init.positional]\ntrainable = false\n[init.unembed.bias]\n'
                   'scheme = "constant"\nvalue = 0')
    attention = spec.init.resolve("attention")
    assert (attention.scheme, attention.std, attention.scale) == ("normal", 0.02, 2.0)
    assert spec.init.resolve("mlp").scheme == "xavier_normal"
    assert spec.init.resolve("unembed", "bias").scheme == "constant"
    assert spec.init.resolve("unembed", "weight").scheme == "xavier_normal"
    assert not spec.init.trainable("positional") and spec.init.trainable("embedding")
    # a group's scheme still needs its parameters
    assert problems('[model]\narchitecture = "transformer"\n[init.mlp]\nscheme = "uniform"\n'
                    'low = 0') == ["a.toml: init.mlp.high: required when scheme is 'uniform'"]


def test_an_init_group_the_architecture_lacks_is_named():
    assert problems('[model]\narchitecture = "onehot_mlp"\n[init.embedding]\nscale = 2') == [
        "a.toml: init.embedding: not an init group of architecture 'onehot_mlp' "
        "(its groups: hidden, output)"]
    assert problems("[init.attention]\nscale = 2") == [
        "a.toml: init.attention: not an init group of architecture 'mlp' "
        "(its groups: embedding, hidden, output)"]


def test_rules_across_transformer_keys():
    assert problems('[model]\narchitecture = "transformer"\nd_model = 100\nn_heads = 3') == [
        "a.toml: model.d_model: must be a multiple of n_heads = 3 (got 100)"]
    assert problems('[model]\narchitecture = "transformer"\nactivation = "tanh"') == [
        "a.toml: model.activation: must be 'relu' or 'gelu' for architecture 'transformer' "
        '(got "tanh")']
    assert problems('[model]\narchitecture = "transformer"\nn_layers = 0') == [
        "a.toml: model.n_layers: must be >= 1 (got 0)"]
    assert problems('[model]\narchitecture = "cnn"')[0].startswith(
        "a.toml: model.architecture: must be one of 'mlp', 'transformer' or 'onehot_mlp'")


def test_a_foreign_key_is_one_line_naming_file_field_and_architecture(tmp_path):
    path = tmp_path / "foreign.toml"
    path.write_text('name = "f"\n[model]\nd_model = 64\n')
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path}: model.d_model: not a key of architecture 'mlp' (its keys: embedding_dim, "
        "hidden, activation, embedding_activation)"]
    # from the command line, the --set item is named
    path.write_text('name = "f"\n')
    result = CliRunner().invoke(main, ["validate", str(path), "--set",
                                       "model.architecture=onehot_mlp", "--set",
                                       "model.embedding_dim=8"])
    assert result.exit_code == 2 and result.stderr.splitlines() == [
        "--set model.embedding_dim=8: model.embedding_dim: not a key of architecture "
        "'onehot_mlp' (its keys: hidden, activation)"]


def test_validate_lists_the_architectures_groups_and_sites(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('name = "t"\n')
    mlp = CliRunner().invoke(main, ["validate", str(path)])
    assert mlp.exit_code == 0, mlp.output
    assert ("# architecture mlp: init groups embedding, hidden, output; dropout sites "
            "embedding, hidden") in mlp.stdout.splitlines()
    result = CliRunner().invoke(main, ["validate", str(path), "--set",
                                       "model.architecture=transformer"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"# {path}: valid; 1 member(s) in 1 population(s)"
    assert lines[1] == ("# architecture transformer: init groups embedding, positional, "
                        "attention, mlp, unembed; dropout sites embedding, attention, mlp")
    printed = tomllib.loads(result.stdout)  # the resolved spec is still TOML
    assert printed["model"]["architecture"] == "transformer" and "hidden" not in printed["model"]
    # a sweep over architectures: one line for each
    swept = CliRunner().invoke(main, ["validate", str(path), "--set",
                                      'sweep."model.architecture"=["mlp", "onehot_mlp"]'])
    assert swept.exit_code == 0, swept.output
    lines = swept.stdout.splitlines()
    assert lines[0] == f"# {path}: valid; 2 member(s) in 2 population(s)"
    assert lines[1].startswith("# architecture mlp: ")
    assert lines[2] == "# architecture onehot_mlp: init groups hidden, output; dropout sites hidden"


def test_a_sweep_over_architectures_makes_one_population_each():
    spec = spec_of('[model]\nhidden = 64\n[init.hidden]\nscale = 2\n[sweep]\nseeds = [0, 1]\n'
                   '"model.architecture" = ["mlp", "onehot_mlp", "transformer"]')
    members = expand_members(spec)
    by_arch = {m.spec.model.architecture: m.spec for m in members}
    assert len(members) == 6 and len(group_by_shape(members)) == 3
    assert [len(g) for g in group_by_shape(members)] == [2, 2, 2]
    assert len({shape_key(s) for s in by_arch.values()}) == 3
    # each member keeps what its architecture has and takes its own defaults for the rest
    assert by_arch["onehot_mlp"].model.hidden == 64
    assert by_arch["onehot_mlp"].init.resolve("hidden").scale == 2.0
    assert by_arch["onehot_mlp"].metrics.mc_sites == ["hidden"]
    transformer = by_arch["transformer"]
    assert transformer.init.hidden is None and transformer.model.d_model == 128
    assert transformer.metrics.mc_sites == ["embedding", "attention", "mlp"]
    # a resolved spec read back (a resume) expands to the same members
    again = expand_members(load_spec(spec_to_toml(spec), "again.toml"))
    assert [m.spec for m in again] == [m.spec for m in members]


def test_a_study_point_may_change_the_architecture():
    from grokexp.study.space import point_spec

    base = spec_of("[model]\nhidden = 64\n[init.embedding]\nscale = 2")
    point = point_spec(base, {"model.architecture": "onehot_mlp"}, "a.toml")
    assert point.model.architecture == "onehot_mlp" and point.model.hidden == 64
    assert point.init.embedding is None and point.metrics.mc_sites == ["hidden"]
    point = point_spec(base, {"model.architecture": "transformer", "model.n_layers": 2},
                       "a.toml")
    assert point.model.n_layers == 2 and point.model.d_model == 128


def test_members_of_one_architecture_split_on_its_keys():
    spec = spec_of('[model]\narchitecture = "transformer"\n[sweep]\n"model.n_layers" = [1, 2]\n'
                   '"model.layer_norm" = [false, true]\n"train.lr" = [1e-3, 3e-3]')
    assert len(group_by_shape(expand_members(spec))) == 4  # lr alone is per member
    spec = spec_of('[sweep]\nvariants = [{"model.architecture" = "transformer", '
                   '"model.d_model" = 32, "model.n_heads" = 2}, {"model.hidden" = 8}]')
    members = expand_members(spec)
    assert [m.spec.model.architecture for m in members] == ["transformer", "mlp"]
    assert members[0].spec.model.d_model == 32 and members[1].spec.model.hidden == 8


def test_a_swept_key_must_fit_the_members_architecture():
    spec = spec_of('[sweep]\n"model.architecture" = ["mlp", "transformer"]\n'
                   '"model.hidden" = [8, 16]')
    with pytest.raises(SpecError) as info:
        expand_members(spec, "a.toml")
    assert info.value.problems == [
        "a.toml: sweep: model.hidden: not a key of architecture 'transformer' (its keys: "
        "d_model, n_heads, d_mlp, n_layers, layer_norm, activation)"]


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.toml")), ids=lambda p: p.name)
def test_every_mlp_spec_logs_its_old_model_keys_plus_architecture(path):
    spec = load_spec(path.read_text(encoding="utf-8"), str(path), default_name=path.stem)
    for one in [spec, *(m.spec for m in expand_members(spec, str(path)))]:
        if one.model.architecture != "mlp":
            continue
        dumped = spec_to_dict(one)
        assert set(dumped["model"]) == MLP_KEYS | {"architecture"}
        # what run/runner.py logs as params: no key of another architecture
        params = flatten(dumped)
        model_params = {k for k in params if k.startswith("model.")}
        assert model_params == {f"model.{k}" for k in MLP_KEYS | {"architecture"}}
        init_groups = {k.split(".")[1] for k in params if k.startswith("init.")
                       and k.count(".") >= 2}
        assert init_groups <= {"embedding", "hidden", "output", "bias"}
        assert one.metrics.mc_sites in (["embedding", "hidden"], ["embedding"], ["hidden"])


def test_the_json_schema_holds_the_new_keys():
    result = CliRunner().invoke(main, ["schema"])
    schema = json.loads(result.stdout)
    defs = schema["$defs"]
    model = defs["ModelSpec"]["properties"]
    assert model["architecture"]["enum"] == ["mlp", "transformer", "onehot_mlp"]
    assert {"d_model", "n_heads", "d_mlp", "n_layers", "layer_norm"} <= set(model)
    assert {"positional", "attention", "mlp", "unembed"} <= set(defs["InitSpec"]["properties"])
    assert defs["TrackingSpec"]["properties"]["log_model"]["default"] is True
    sites = defs["MetricsSpec"]["properties"]["mc_sites"]["items"]["enum"]
    assert set(sites) == {"embedding", "hidden", "attention", "mlp"}


def test_log_model_is_on_unless_turned_off():
    assert spec_of("").tracking.log_model is True
    assert spec_of("[tracking]\nlog_model = false").tracking.log_model is False
    assert problems('[tracking]\nlog_model = "sometimes"') == [
        'a.toml: tracking.log_model: must be true or false (got "sometimes")']
