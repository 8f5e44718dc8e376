from __future__ import annotations

import math

import torch

from grokexp.init import init_member, parameter_layout
from grokexp.spec_io import load_spec


def spec(text: str = ""):
    return load_spec(f'name = "i"\n{text}', "i.toml")


def test_xavier_normal_on_weights_and_biases_uses_the_layer_fans():
    s = spec("[model]\nembedding_dim = 128\nhidden = 256")
    params = init_member(s)
    sigma = math.sqrt(2 / (256 + 256))
    assert abs(params["hidden.0.weight"].std().item() - sigma) / sigma < 0.02
    assert abs(params["output.bias"].std().item() - math.sqrt(2 / (256 + 53))) < 0.03
    assert abs(params["hidden.0.bias"].mean().item()) < 0.02
    assert [n for n, *_ in parameter_layout(s)] == list(params)


def test_scale_multiplies_and_shift_moves():
    base = init_member(spec())
    scaled = init_member(spec("[init]\nscale = 3\n[init.embedding]\nshift = 0.6"))
    assert torch.allclose(scaled["hidden.0.weight"], 3 * base["hidden.0.weight"])
    assert torch.allclose(scaled["embedding"], 3 * base["embedding"] + 0.6)


def test_uniform_constant_and_normal_per_layer():
    params = init_member(spec('[init.embedding]\nscheme = "uniform"\nlow = 0.4\nhigh = 0.8\n'
                              '[init.output]\nscheme = "constant"\nvalue = 0.1\n'
                              '[init.hidden]\nscheme = "normal"\nmean = 0.2\nstd = 0.1'))
    emb = params["embedding"]
    assert emb.min() >= 0.4 and emb.max() <= 0.8 and abs(emb.mean().item() - 0.6) < 0.01
    assert torch.all(params["output.weight"] == 0.1) and torch.all(params["output.bias"] == 0.1)
    hidden = params["hidden.0.weight"]
    assert abs(hidden.mean().item() - 0.2) < 0.01 and abs(hidden.std().item() - 0.1) < 0.01


def test_init_depends_on_seed_only():
    a, b = init_member(spec()), init_member(spec("[train]\nsplit_seed = 9\nlr = 0.1"))
    c = init_member(spec("[train]\nseed = 1"))
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert not torch.equal(a["embedding"], c["embedding"])
