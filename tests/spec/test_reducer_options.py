"""The reducer options as spec keys: validation (one clear line naming file and field), the
sweeps and ``[sweep] variants`` that make them one population, the comparison spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from grokexp.cli import main
from grokexp.engine.sweep import expand_members, group_by_shape
from grokexp.spec.io import load_spec, validate_spec

BASE: dict[str, Any] = {
    "name": "reducers",
    "task": {"modulus": 11},
    "model": {"embedding_dim": 8, "hidden": 16},
    "train": {"epochs": 30, "batch_size": 16, "lr": 1e-2},
    "metrics": {"every": 5},
}

SPEC_TOML = """
name = "reducers"
[task]
modulus = 11
[model]
embedding_dim = 8
hidden = 16
[train]
epochs = 4
batch_size = 16
lr = 1e-2
{train}
[metrics]
every = 2
mc_dropout = false
drc = false
checkpoints = 0
"""


def test_a_sweep_over_the_options_is_one_population():
    raw = {**BASE, "sweep": {"train.grad_filter": [{"kind": "none"}, {"kind": "ema"},
                                                   {"kind": "ma", "window": 5}],
                             "train.orthogonal_grad": [False, True],
                             "train.weight_norm": ["fixed", 3.0],
                             "train.embedding_lr_scale": [1.0, 10.0]}}
    members = expand_members(validate_spec(raw, "reducers"))
    assert len(members) == 24 and len(group_by_shape(members)) == 1


def test_sweep_variants_are_one_configuration_each():
    """``variants``: "one of these" configurations (× seeds), where the lists are products."""
    raw = {**BASE, "sweep": {"seeds": [0, 1], "variants": [
        {}, {"train.grad_filter": {"kind": "ma", "window": 7}},
        {"train": {"orthogonal_grad": True}, "train.embedding_lr_scale": 3.0}]}}
    members = expand_members(validate_spec(raw, "reducers"))
    assert [m.spec.train.seed for m in members] == [0, 1] * 3
    trains = [m.spec.train for m in members]
    assert [t.grad_filter.window if t.grad_filter else None for t in trains] == [
        None, None, 7, 7, None, None]
    assert [t.orthogonal_grad for t in trains] == [False] * 4 + [True] * 2
    assert [t.embedding_lr_scale for t in trains] == [1.0] * 4 + [3.0] * 2
    assert members[2].varied == {"train.grad_filter.kind": "ma", "train.grad_filter.window": 7,
                                 "train.seed": 0}
    assert len(group_by_shape(members)) == 1


@pytest.mark.parametrize("variants, line", [
    ('[{}, { "train.nope" = 1 }]', "sweep.variants[1].train.nope: unknown key"),
    ("[1, 2]", "sweep: 'variants' must be a list of tables of dotted keys"),
    ('[{ "train.grad_filter" = { kind = "ema", alpha = 2.0 } }]',
     "sweep: train.grad_filter.alpha: must be < 1"),
])
def test_bad_variants_are_one_clear_line(variants, line, tmp_path):
    path = tmp_path / "variants.toml"
    path.write_text(SPEC_TOML.format(train="") + f"[sweep]\nvariants = {variants}\n")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code != 0
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "variants.toml" in lines[0] and line in lines[0], result.output


def test_the_comparison_spec_is_one_population_at_the_published_defaults():
    text = (Path(__file__).resolve().parents[2] / "specs" / "compare_reducers.toml").read_text()
    members = expand_members(load_spec(text, "compare_reducers.toml"))
    assert len(members) == 27 and len(group_by_shape(members)) == 1
    trains = [m.spec.train for m in members[::3]]
    assert [t.weight_decay for t in trains] == [1.0] * 6 + [0.0] * 3
    assert trains[7].orthogonal_grad and trains[8].weight_norm == "fixed"
    assert all(m.spec.train.epochs == 3000 and m.spec.train.stop_after_generalized == 0
               for m in members)
    assert trains[0].grad_filter is None and not trains[0].orthogonal_grad
    assert (trains[1].grad_filter.alpha, trains[1].grad_filter.lamb) == (0.98, 2.0)
    assert (trains[2].grad_filter.window, trains[2].grad_filter.lamb) == (100, 5.0)
    assert trains[3].orthogonal_grad and trains[4].weight_norm == "fixed"
    assert trains[5].embedding_lr_scale == 10.0




@pytest.mark.parametrize("train, line", [
    ('grad_filter = { kind = "ema", alpha = 1.0 }', "train.grad_filter.alpha: must be < 1"),
    ('grad_filter = { kind = "ma", window = 0 }', "train.grad_filter.window: must be >= 1"),
    ('grad_filter = { kind = "ema", lamb = inf }',
     "train.grad_filter.lamb: must be a finite number"),
    ('grad_filter = { kind = "ma", alpha = 0.5 }',
     "train.grad_filter: 'alpha' does not apply to kind 'ma'"),
    ('grad_filter = { kind = "fast" }', "train.grad_filter.kind: must be one of"),
    ('weight_norm = -1.0', 'train.weight_norm: must be "fixed" or a positive number'),
    ('weight_norm = "initial"', 'train.weight_norm: must be "fixed" or a positive number'),
    ('embedding_lr_scale = 0', "train.embedding_lr_scale: must be > 0"),
    ('orthogonal_grad = "maybe"', "train.orthogonal_grad: must be true or false"),
])
def test_bad_reducer_settings_are_one_clear_line(train, line, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(SPEC_TOML.format(train=train))
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code != 0
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "bad.toml" in lines[0] and line in lines[0], result.output


def test_weight_norm_with_a_frozen_layer_is_refused(tmp_path):
    path = tmp_path / "frozen.toml"
    path.write_text(SPEC_TOML.format(train='weight_norm = "fixed"')
                    + "[init.embedding]\ntrainable = false\n")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code != 0
    assert "frozen.toml: train.weight_norm: cannot hold the norm with a frozen layer" \
        in result.output


@pytest.mark.parametrize("name, keys", [
    ("tune_grokfast_ema", {"train.grad_filter.alpha", "train.grad_filter.lamb"}),
    ("tune_grokfast_ma", {"train.grad_filter.window", "train.grad_filter.lamb"}),
    ("tune_embedding_lr", {"train.embedding_lr_scale"}),
])
def test_the_tuning_specs_search_their_reducers_own_parameters(name, keys):
    root = Path(__file__).resolve().parents[2] / "specs"
    spec = load_spec((root / f"{name}.toml").read_text(), f"{name}.toml")
    compare = load_spec((root / "compare_reducers.toml").read_text(), "compare_reducers.toml")
    assert spec.optimize is not None and set(spec.optimize.dims()) == keys
    assert (spec.optimize.n_trials, spec.optimize.seeds) == (8, 3)  # the same budget each
    assert (spec.task, spec.model, spec.init) == (compare.task, compare.model, compare.init)
    assert spec.train.epochs == compare.train.epochs == 3000
