"""A study whose space includes ``model.architecture``: every other dimension is checked
under each architecture before the study starts (a key one architecture lacks would
otherwise fail at its first trial and abort the study)."""

from __future__ import annotations

import pytest

from grokexp.errors import SpecError
from grokexp.spec.io import validate_spec
from grokexp.study.space import check_space, point_spec

BASE = {
    "name": "arch-study",
    "task": {"modulus": 7, "train_fraction": 0.5},
    "model": {"embedding_dim": 8, "hidden": 16},
    "train": {"epochs": 4, "batch_size": 8},
    "optimize": {"n_trials": 2, "seeds": 1, "space": {}},
}


def spec_with(space: dict) -> object:
    raw = {**BASE, "optimize": {**BASE["optimize"], "space": space}}
    return validate_spec(raw, "study.toml")


def test_a_key_one_architecture_lacks_is_refused_before_the_study():
    spec = spec_with({"model.architecture": {"choices": ["mlp", "transformer"]},
                      "model.hidden": {"choices": [16, 32]}})
    with pytest.raises(SpecError) as err:
        check_space(spec, "study.toml")
    text = "\n".join(err.value.problems)
    assert "optimize.space.model.hidden: 16 with model.architecture = 'transformer'" in text
    assert "not a key of architecture 'transformer'" in text
    assert "'mlp'" not in text.split("with model.architecture = ")[1].split(" ")[0]


def test_shared_keys_pass_under_every_architecture():
    spec = spec_with({"model.architecture": {"choices": ["mlp", "onehot_mlp"]},
                      "model.hidden": {"choices": [16, 32]},
                      "train.weight_decay": {"low": 0.1, "high": 1.0}})
    check_space(spec, "study.toml")  # hidden is a key of both
    point = point_spec(spec, {"model.architecture": "onehot_mlp", "model.hidden": 32},
                       "study.toml")
    assert point.model.architecture == "onehot_mlp" and point.model.hidden_sizes == (32,)
