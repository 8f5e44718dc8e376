"""The published reducers (Grokfast EMA/MA, ⊥Grad, Omnigrok's fixed norm, an embedding lr).

Each is held against a plain PyTorch loop that applies the authors' own code to ``p.grad``
(``gradfilter_ema`` / ``gradfilter_ma`` from ironjr/grokfast, ``OrthoGrad`` from
LucasPrietoAl/grokking-at-the-edge-of-numerical-stability, Omnigrok's ``L2``/``rescale``,
copied in tests/authors_reducers.py) around ``torch.optim.AdamW`` with param groups, on
tests/reference.py's ``nn.Module``; grokexp gives only the initial weights, the split and
the batch order. Then a population mixing every option gives each member its final weights
alone, bitwise; resume carries the filter state; the options are MLflow params and study
dimensions (the spec side is tests/spec/test_reducer_options.py).
"""

from __future__ import annotations

import json
from typing import Any

import optuna
import pytest
import torch
from authors_reducers import (
    gradfilter_ema,
    gradfilter_ma,
    omnigrok_l2,
    omnigrok_rescale,
    orthogonalize_gradients,
)
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from reference import plain_training
from torch import nn

from grokexp.cli import main
from grokexp.engine import optim
from grokexp.engine.init import init_member
from grokexp.engine.sweep import Member, group_by_shape
from grokexp.engine.train import Interrupted, MemberSeries
from grokexp.run.runner import train_group
from grokexp.spec.io import validate_spec
from grokexp.spec.schema import Spec
from grokexp.study.storage import StorageTarget, open_storage
from grokexp.tracking.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

CPU = torch.device("cpu")
BASE: dict[str, Any] = {
    "name": "reducers",
    "task": {"modulus": 11},
    "model": {"embedding_dim": 8, "hidden": 16},
    "train": {"epochs": 30, "batch_size": 16, "lr": 1e-2},
    "metrics": {"every": 5},
}
METRICS = ("train_acc", "test_acc", "train_loss", "test_loss")
# 60 training pairs, batches of 16: 4 steps an epoch, 120 in all; a window of 10 fills early
OPTIONS: dict[str, dict[str, Any]] = {
    "ema": {"grad_filter": {"kind": "ema", "alpha": 0.9, "lamb": 2.0}},
    "ma": {"grad_filter": {"kind": "ma", "window": 10, "lamb": 5.0}},
    "ortho": {"orthogonal_grad": True},
    "fixed_norm": {"weight_norm": "fixed"},
    "given_norm": {"weight_norm": 6.0},
    "lr_scale": {"embedding_lr_scale": 10.0},
    "ema_ortho": {"grad_filter": {"kind": "ema"}, "orthogonal_grad": True,
                  "weight_norm": "fixed"},
}


def spec_with(**train: Any) -> Spec:
    return validate_spec({**BASE, "train": {**BASE["train"], **train}}, "reducers")


# ------------------------------------------------ the plain loop


def plain_history(spec: Spec) -> tuple[dict[str, list[float]], dict[str, torch.Tensor]]:
    """One member trained the textbook way, with the reducers as their authors apply them."""
    t = spec.train
    filter_state: Any = None
    target: torch.Tensor | None = None

    def groups(net: nn.Module) -> list[dict[str, Any]]:
        nonlocal target
        target = (omnigrok_l2(net).detach() if t.weight_norm == "fixed"
                  else torch.tensor(float(t.weight_norm or 0.0) ** 2))
        rest = [q for n, q in net.named_parameters() if n != "embedding.weight"]
        return [{"params": [net.embedding.weight], "lr": t.lr * t.embedding_lr_scale},
                {"params": rest}]

    def after_backward(net: nn.Module) -> None:
        nonlocal filter_state
        f = t.grad_filter
        if f is not None and f.kind == "ema":
            filter_state = gradfilter_ema(net, filter_state, f.alpha, f.lamb)
        elif f is not None and f.kind == "ma":
            filter_state = gradfilter_ma(net, filter_state, f.window, f.lamb)
        if t.orthogonal_grad:
            orthogonalize_gradients(list(net.parameters()))

    def after_step(net: nn.Module) -> None:
        if t.weight_norm is not None:
            assert target is not None
            with torch.no_grad():
                omnigrok_rescale(net, torch.sqrt(target / omnigrok_l2(net)))

    out, net = plain_training(spec, groups, after_backward, after_step)
    weights = {"embedding": net.embedding.weight.detach(),
               "output.weight": net.output.weight.detach().T}
    return out, weights


def largest_gap(history: MemberSeries, reference: dict[str, list[float]], name: str) -> float:
    assert history.epochs == reference["epochs"]
    return max(abs(x - y) for x, y in zip(history.metrics[name], reference[name], strict=True))


def same_history(a: MemberSeries, b: MemberSeries) -> None:
    assert a.epochs == b.epochs
    assert (a.train_grok_epoch, a.test_grok_epoch) == (b.train_grok_epoch, b.test_grok_epoch)
    for name in METRICS:
        assert a.metrics[name] == b.metrics[name], name


class FinalWeights:
    """A hook that keeps each member's final weights."""

    def __init__(self) -> None:
        self.state: dict[int, dict[str, torch.Tensor]] = {}

    def on_member_end(self, member, history, state) -> None:
        self.state[member.index] = state

    def metrics(self, ctx):
        return {}

    def on_evaluation(self, ctx, values) -> None:
        pass

    def on_train_end(self, history) -> None:
        pass


@pytest.fixture(scope="module")
def baseline_history():
    return plain_history(spec_with())[0]


@pytest.mark.parametrize("name", list(OPTIONS))
@pytest.mark.parametrize("fused", [True, False])
def test_each_reducer_matches_the_authors_code(name, fused, baseline_history, monkeypatch):
    if not fused:
        monkeypatch.setattr(optim, "_fused_available", lambda like: False)
    spec = spec_with(**OPTIONS[name])
    weights = FinalWeights()
    ours = train_group([Member(0, spec, {})], CPU, [weights]).members[0]
    reference, ref_weights = plain_history(spec)
    for metric in ("train_loss", "test_loss"):
        gap = largest_gap(ours, reference, metric)
        # float32 rounding over 120 steps (hand-written backward, fused AdamW, sums in another
        # order than torch.dot / Python's sum) stays far below this ...
        assert gap < 1e-5, (metric, gap)
        # ... and the option changes the history by far more: the test would see it missing
        assert largest_gap(ours, baseline_history, metric) > 100 * max(gap, 1e-5), metric
    for metric in ("train_acc", "test_acc"):
        assert largest_gap(ours, reference, metric) <= 1.0 / 121 + 1e-6  # one pair at most
    for key, ref in ref_weights.items():
        torch.testing.assert_close(weights.state[0][key], ref, rtol=1e-5, atol=1e-5)


def test_fixed_norm_holds_the_initial_norm():
    spec = spec_with(**OPTIONS["fixed_norm"])
    weights = FinalWeights()
    train_group([Member(0, spec, {})], CPU, [weights])
    start = sum(float((t.double() ** 2).sum()) for t in init_member(spec).values())
    end = sum(float((t.double() ** 2).sum()) for t in weights.state[0].values())
    assert end == pytest.approx(start, rel=1e-5)  # float32 sums of ~1000 squares


def test_mixed_population_gives_each_member_its_history_alone():
    """Every option (and none) in one population, a member leaving early: each member's
    final weights are bitwise those it gets alone, and so its grok epochs and accuracies.

    The losses are held to 1e-6 rather than bitwise: the evaluation forward
    (``model.logits``, batched matmuls over K members) can differ in the last bit between a
    shard of one member and of two for the same weights (seen here: 6e-8 in a logit), which
    is the evaluation's, not the training's, and not the reducers'."""
    specs = [spec_with(), *(spec_with(**o) for o in OPTIONS.values()),
             spec_with(grad_filter={"kind": "ma", "window": 7, "lamb": 3.0}),  # another window
             validate_spec({**BASE, "train": {**BASE["train"], **OPTIONS["ma"],
                                              "stop_after_generalized": 0},
                            "metrics": {**BASE["metrics"], "grok_threshold": 0.01}},
                           "reducers")]
    members = [Member(k, s, {}) for k, s in enumerate(specs)]
    assert len(group_by_shape(members)) == 1
    weights = FinalWeights()
    together = train_group(members, CPU, [weights])
    assert together.by_index(len(specs) - 1).last_epoch < 30  # left: the rest were reselected
    for member in members:
        alone_weights = FinalWeights()
        alone = train_group([Member(0, member.spec, {})], CPU, [alone_weights]).members[0]
        for key, value in alone_weights.state[0].items():
            assert torch.equal(weights.state[member.index][key], value), (member.index, key)
        mixed = together.by_index(member.index)
        assert (mixed.epochs, mixed.train_grok_epoch, mixed.test_grok_epoch) == (
            alone.epochs, alone.train_grok_epoch, alone.test_grok_epoch)
        for name in METRICS:
            gap = max(abs(x - y) for x, y in zip(mixed.metrics[name], alone.metrics[name],
                                                  strict=True))
            assert gap <= (0.0 if name.endswith("acc") else 1e-6), (member.index, name, gap)


@pytest.mark.parametrize("stop_epoch", [3, 17])
def test_resume_with_filters_is_bitwise(stop_epoch, tmp_path):
    """Interrupted with EMA and MA state (the MA window half full at epoch 3) and a fixed
    norm, through a checkpoint file: the resumed run is the uninterrupted one."""
    specs = [spec_with(**OPTIONS["ema"], weight_norm="fixed"),
             spec_with(grad_filter={"kind": "ma", "window": 25}, orthogonal_grad=True)]
    members = [Member(k, s, {}) for k, s in enumerate(specs)]
    whole = train_group(members, CPU, [])
    calls = {"n": -1}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] >= stop_epoch

    with pytest.raises(Interrupted) as stopped:
        train_group(members, CPU, [], should_stop=should_stop)
    state = stopped.value.state
    assert state.epoch == stop_epoch and "reducers" in state.optimizer
    checkpoint = Checkpoint("spec", "hash", None, {m.index: str(m.index) for m in members}, 0,
                            state)
    save_checkpoint(checkpoint, tmp_path / "c.pt")
    resumed = train_group(members, CPU, [], resume=load_checkpoint(tmp_path / "c.pt").state)
    for a, b in zip(whole.members, resumed.members, strict=True):
        assert (a.epochs, a.metrics, a.status) == (b.epochs, b.metrics, b.status)


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


def test_options_are_params_of_the_member_runs(tmp_path, tracking_uri):
    path = tmp_path / "sweep.toml"
    path.write_text(SPEC_TOML.format(train='grad_filter = { kind = "ma", window = 3 }')
                    + '[sweep]\n"train.orthogonal_grad" = [false, true]\n'
                    + '"train.embedding_lr_scale" = [1.0, 10.0]\n')
    uri = tracking_uri
    result = CliRunner().invoke(main, ["run", str(path), "--tracking-uri", uri, "--json"])
    assert result.exit_code == 0, result.output
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("reducers")
    runs = client.search_runs([experiment.experiment_id])
    members = [r for r in runs if "train.orthogonal_grad" in r.data.params]
    seen = {(r.data.params["train.orthogonal_grad"], r.data.params["train.embedding_lr_scale"])
            for r in members}
    assert seen == {("False", "1.0"), ("True", "1.0"), ("False", "10.0"), ("True", "10.0")}
    for run in members:
        assert run.data.params["train.grad_filter.kind"] == "ma"
        assert run.data.params["train.grad_filter.window"] == "3"
        assert run.data.params["train.grad_filter.lamb"] == "5.0"
    assert json.loads(result.output.strip().splitlines()[-1]) is not None


def test_an_optimize_space_over_the_options_runs(tmp_path, tracking_uri):
    """Dotted keys inside the filter table and a boolean choice are study dimensions."""
    path = tmp_path / "opt.toml"
    path.write_text(SPEC_TOML.format(train='grad_filter = { kind = "ema" }')
                    + "[optimize]\nn_trials = 2\nbatch = 2\nseeds = 1\nn_startup_trials = 2\n"
                    + "[optimize.space]\n"
                    + '"train.grad_filter.lamb" = { low = 0.5, high = 5.0 }\n'
                    + '"train.orthogonal_grad" = { choices = [false, true] }\n'
                    + '"train.embedding_lr_scale" = { low = 1.0, high = 10.0, log = true }\n')
    result = CliRunner().invoke(main, ["optimize", "--quiet", str(path), "--tracking-uri",
                                       tracking_uri, "--out", str(tmp_path / "out")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    storage = open_storage(StorageTarget("journal", str(tmp_path / "mlruns" / "optuna.log")))
    trials = optuna.load_study(study_name="reducers", storage=storage).get_trials()
    assert len(trials) == 2
    client = MlflowClient(tracking_uri)
    for trial in trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert 0.5 <= trial.params["train.grad_filter.lamb"] <= 5.0
        assert trial.params["train.orthogonal_grad"] in (False, True)
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert float(run.data.params["train.grad_filter.lamb"]) == pytest.approx(
            trial.params["train.grad_filter.lamb"])
        assert run.data.params["train.grad_filter.alpha"] == "0.98"  # the kind's default
