"""Initial parameters against the formulas, written out here from their definitions.

Every expected σ or bound comes from the layer's own n_in/n_out as written in this file
(never from grokexp's layout): the embedding maps a one-hot of P tokens to d, the first hidden
layer takes the concatenated embeddings (2d), each further layer the previous width, the
output layer maps the last width to P. Biases use their layer's fans (the paper: Xavier
normal on weights *and* biases).

Statistical bounds: the sample std of n draws from a distribution of std σ and kurtosis κ has
standard error σ·sqrt((κ-1)/(4n)): σ/sqrt(2n) for a normal draw (κ = 3), σ/sqrt(5n) for a
uniform one (κ = 9/5); the sample mean has σ/sqrt(n). Every check allows 5 such standard
errors (a false alarm has probability below 1e-6 per check). Where one tensor holds few
values (a bias of 53), draws of many seeds are pooled so the bound is tight enough to tell
wrong fans apart.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from grokexp.engine.init import init_member
from grokexp.engine.sweep import expand_members
from grokexp.engine.train import Hook
from grokexp.run.runner import train_group
from grokexp.spec.io import load_spec

# the paper's sizes with a second hidden layer, so that every kind of layer is there
P, D, H1, H2 = 53, 128, 256, 128
SIZES = f"[model]\nembedding_dim = {D}\nhidden = [{H1}, {H2}]\n"
# (n_in, n_out) of each layer, written out from the architecture
FANS = {"embedding": (P, D), "hidden.0": (2 * D, H1), "hidden.1": (H1, H2),
        "output": (H2, P)}
SHAPES = {"embedding": (P, D), "hidden.0.weight": (2 * D, H1), "hidden.0.bias": (H1,),
          "hidden.1.weight": (H1, H2), "hidden.1.bias": (H2,), "output.weight": (H2, P),
          "output.bias": (P,)}
SEEDS = 60  # pooled for the per-tensor statistics: ≥ 3180 values even for output.bias


def spec(text: str = "", seed: int = 0):
    return load_spec(f'name = "i"\n{SIZES}{text}\n[train]\nseed = {seed}\n', "i.toml")


def layer(name: str) -> str:
    return name.removesuffix(".weight").removesuffix(".bias")


def pooled(text: str = "") -> dict[str, torch.Tensor]:
    """Each tensor's values over SEEDS seeds, flattened (float64 for the statistics)."""
    draws = [init_member(spec(text, seed)) for seed in range(SEEDS)]
    return {n: torch.cat([d[n].flatten() for d in draws]).double() for n in draws[0]}


def std_error(sigma: float, kurtosis: float, n: int) -> float:
    """Standard error of the sample std of n draws (see the module docstring)."""
    return sigma * math.sqrt((kurtosis - 1) / (4 * n))


def assert_normal(values: torch.Tensor, mean: float, sigma: float, what: str) -> None:
    n = values.numel()
    std_err, mean_err = std_error(sigma, 3.0, n), sigma / math.sqrt(n)
    std, avg = values.std().item(), values.mean().item()
    assert abs(std - sigma) < 5 * std_err, f"{what}: std {std:.5f}, expected {sigma:.5f}"
    assert abs(avg - mean) < 5 * mean_err, f"{what}: mean {avg:.5f}, expected {mean:.5f}"


def assert_uniform(values: torch.Tensor, low: float, high: float, what: str) -> None:
    """Within [low, high], reaching both ends, with the uniform's mean and std."""
    n, width = values.numel(), high - low
    assert values.min().item() >= low and values.max().item() <= high, what
    # the gap between the extreme of n uniform draws and its end is > 15·width/n with
    # probability (1 - 15/n)^n < e^-15: a narrower range than asked would show here
    assert values.min().item() < low + 15 * width / n, what
    assert values.max().item() > high - 15 * width / n, what
    sigma = width / math.sqrt(12)
    std_err = std_error(sigma, 9 / 5, n)
    assert abs(values.std().item() - sigma) < 5 * std_err, what
    assert abs(values.mean().item() - (low + high) / 2) < 5 * sigma / math.sqrt(n), what


def test_shapes_follow_the_in_by_out_layout():
    params = init_member(spec())
    assert {n: tuple(t.shape) for n, t in params.items()} == SHAPES
    assert all(t.dtype == torch.float32 for t in params.values())


def test_xavier_normal_on_weights_and_biases_uses_each_layers_own_fans():
    values = pooled()
    for name, sample in values.items():
        n_in, n_out = FANS[layer(name)]
        assert_normal(sample, 0.0, math.sqrt(2 / (n_in + n_out)), name)


def test_xavier_normal_std_is_scaled_by_alpha():
    alpha = 2.5
    values = pooled(f"[init]\nscale = {alpha}")
    for name, sample in values.items():
        n_in, n_out = FANS[layer(name)]
        assert_normal(sample, 0.0, alpha * math.sqrt(2 / (n_in + n_out)), name)


def test_scale_multiplies_and_shift_moves():
    base = init_member(spec())
    scaled = init_member(spec("[init]\nscale = 3\n[init.embedding]\nshift = 0.6"))
    assert torch.allclose(scaled["hidden.0.weight"], 3 * base["hidden.0.weight"])
    assert torch.allclose(scaled["output.bias"], 3 * base["output.bias"])
    assert torch.allclose(scaled["embedding"], 3 * base["embedding"] + 0.6)


def test_xavier_uniform_bound_uses_each_layers_fans():
    values = pooled('[init]\nscheme = "xavier_uniform"')
    for name, sample in values.items():
        n_in, n_out = FANS[layer(name)]
        bound = math.sqrt(6 / (n_in + n_out))  # gain 1
        assert_uniform(sample, -bound, bound, name)


def torch_fan_in(name: str) -> int:
    """fan_in as torch.nn.init computes it (mode 'fan_in') for the same layer as a module.

    For nn.Linear that is in_features; for nn.Embedding(P, d) torch takes size(1) = d, and
    grokexp stores the embedding as nn.Embedding does. A bias takes its layer's fan_in.
    """
    kind = layer(name)
    if kind == "embedding":
        module: nn.Module = nn.Embedding(P, D)
    else:
        module = nn.Linear(*FANS[kind])
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(module.weight)
    return fan_in


def test_torch_fans_are_the_ones_written_here():
    assert torch_fan_in("embedding") == D
    assert [torch_fan_in(f"{n}.weight") for n in ("hidden.0", "hidden.1", "output")] == [
        2 * D, H1, H2]


def test_kaiming_normal_std_is_gain_over_sqrt_fan_in():
    values = pooled('[init]\nscheme = "kaiming_normal"')
    gain = math.sqrt(2.0)  # torch.nn.init.calculate_gain("relu")
    for name, sample in values.items():
        assert_normal(sample, 0.0, gain / math.sqrt(torch_fan_in(name)), name)


def test_kaiming_uniform_bound_is_gain_sqrt_3_over_fan_in():
    values = pooled('[init]\nscheme = "kaiming_uniform"')
    gain = math.sqrt(2.0)
    for name, sample in values.items():
        bound = gain * math.sqrt(3 / torch_fan_in(name))
        assert_uniform(sample, -bound, bound, name)


def test_uniform_constant_and_normal_per_layer():
    values = pooled('[init.embedding]\nscheme = "uniform"\nlow = 0.4\nhigh = 0.8\n'
                    '[init.output]\nscheme = "constant"\nvalue = 0.1\n'
                    '[init.hidden]\nscheme = "normal"\nmean = 0.2\nstd = 0.1')
    assert_uniform(values["embedding"], 0.4, 0.8, "embedding")
    assert torch.all(values["output.weight"] == torch.tensor(0.1).double())
    assert torch.all(values["output.bias"] == torch.tensor(0.1).double())
    for name in ("hidden.0.weight", "hidden.0.bias", "hidden.1.weight", "hidden.1.bias"):
        assert_normal(values[name], 0.2, 0.1, name)


def test_bias_tables_take_precedence_field_by_field():
    """``[init.<layer>.bias]`` over ``[init.bias]`` over the layer's weight recipe."""
    values = pooled('[init]\nscale = 2\n'
                    '[init.bias]\nscheme = "uniform"\nlow = 0.1\nhigh = 0.3\n'
                    '[init.hidden]\nscheme = "normal"\nmean = 0.0\nstd = 0.05\n'
                    '[init.hidden.bias]\nhigh = 0.5\n'
                    '[init.output.bias]\nscheme = "constant"\nvalue = -0.25\nscale = 1\n')
    # hidden biases: uniform from [init.bias], its high from [init.hidden.bias], α = 2 from
    # [init] (fields merge one by one), so 2 × U[0.1, 0.5]
    for name in ("hidden.0.bias", "hidden.1.bias"):
        assert_uniform(values[name], 0.2, 1.0, name)
    # hidden weights keep their own table, scaled
    for name in ("hidden.0.weight", "hidden.1.weight"):
        assert_normal(values[name], 0.0, 2 * 0.05, name)
    # output bias: its own table wins, α reset to 1 there
    assert torch.all(values["output.bias"] == -0.25)
    # output weights know nothing of the bias tables: Xavier normal × 2 with their fans
    n_in, n_out = FANS["output"]
    assert_normal(values["output.weight"], 0.0, 2 * math.sqrt(2 / (n_in + n_out)),
                  "output.weight")
    n_in, n_out = FANS["embedding"]
    assert_normal(values["embedding"], 0.0, 2 * math.sqrt(2 / (n_in + n_out)), "embedding")


def test_init_bias_alone_reaches_every_bias():
    values = pooled('[init.bias]\nscheme = "uniform"\nlow = -0.3\nhigh = -0.1')
    for name in ("hidden.0.bias", "hidden.1.bias", "output.bias"):
        assert_uniform(values[name], -0.3, -0.1, name)
    n_in, n_out = FANS["hidden.0"]
    assert_normal(values["hidden.0.weight"], 0.0, math.sqrt(2 / (n_in + n_out)),
                  "hidden.0.weight")


def test_init_depends_on_seed_only():
    a, b = init_member(spec()), init_member(
        load_spec(f'name = "i"\n{SIZES}[train]\nsplit_seed = 9\nlr = 0.1', "i.toml"))
    c = init_member(spec(seed=1))
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert not torch.equal(a["embedding"], c["embedding"])


TRAIN = """
name = "frozen"
[task]
modulus = 11
[model]
embedding_dim = 16
hidden = [24, 16]
[train]
epochs = 6
lr = 1e-2
weight_decay = 1.0
batch_size = 16
[metrics]
every = 3
"""


def test_frozen_hidden_and_output_never_move_while_the_rest_trains():
    """``trainable = false`` on hidden and output, per member: one member of the population
    freezes them, the other trains everything."""
    members = expand_members(load_spec(
        TRAIN + '[sweep]\n"init.hidden.trainable" = [false, true]\n'
                '"init.output.trainable" = [false, true]\n', "f.toml"))
    frozen = next(m for m in members if not m.spec.init.trainable("hidden")
                  and not m.spec.init.trainable("output"))
    free = next(m for m in members if m.spec.init.trainable("hidden")
                and m.spec.init.trainable("output"))
    start: dict[int, dict[str, torch.Tensor]] = {}
    end: dict[int, dict[str, torch.Tensor]] = {}

    class Capture(Hook):
        def on_evaluation(self, ctx, values):
            if ctx.epoch == 0:  # the parameters training starts from
                for pos, member in enumerate(ctx.members):
                    start[member.index] = {n: p[pos].detach().clone()
                                           for n, p in ctx.population.params.items()}

        def on_member_end(self, member, history, state):
            end[member.index] = state

    histories = train_group(members, torch.device("cpu"), [Capture()])
    assert all(h.last_epoch == 6 for h in histories.members)
    still = ["hidden.0.weight", "hidden.0.bias", "hidden.1.weight", "hidden.1.bias",
             "output.weight", "output.bias"]
    for name in still:  # bitwise: neither the gradient step nor the weight decay touched them
        assert torch.equal(end[frozen.index][name], start[frozen.index][name]), name
        assert not torch.equal(end[free.index][name], start[free.index][name]), name
    assert not torch.equal(end[frozen.index]["embedding"], start[frozen.index]["embedding"])
