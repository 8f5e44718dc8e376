"""MC dropout, the DRC and inactive neurons on every architecture, against plain references.

Each architecture of ``arch_cases.py`` (the paper MLP, the 1-layer transformer, the 2-layer
pre-LN decoder, the one-hot MLP) is measured by grokexp in populations of 1, 2 and 5 members,
at chunk sizes of one pass, three passes (seven passes leave a short last chunk) and all
passes, and held against its independent plain network:

- fed the very masks grokexp draws (each member's generator, pass after pass, the masks of a
  pass in the order the architecture's definition gives, a site not chosen drawing nothing),
  every pass's accuracy is the reference's;
- with masks of its own (F.dropout's), the reference's mean and variance over many passes
  agree within 4 standard errors;
- the inactive share and the share of zeros are a numpy count over the reference's
  activations.

The paper MLP's fast path (``MlpArch.dropout_passes``) and its generic path through the
forward are both checked, and against each other.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from arch_cases import CASES, Case, P, member, member_pairs, random_params

import grokexp.diagnostics.metrics.dropout as dropout
from grokexp.diagnostics.metrics.activity import activation_sparsity
from grokexp.diagnostics.metrics.dropout import (
    QUANTUM,
    dropout_accuracies,
    dropout_robustness,
    keep_mask,
    mc_dropout_accuracy,
)
from grokexp.engine.arch.transformer import TransformerArch

K, N = 5, 20
RATES = [0.0, 0.3, 0.3, 0.5, 0.5, 0.9, 0.3]  # seven passes: chunks of three leave one
POPULATIONS = ([3], [4, 1], [0, 1, 2, 3, 4])
SEED = 40


def _paths(case: Case) -> list[bool]:
    """fast=True (the architecture's own dropout path where it has one) and, where it has
    one, fast=False (through its forward)."""
    return [True, False] if hasattr(case.arch, "dropout_passes") else [True]


def _site_choices(case: Case) -> list[tuple[str, ...]]:
    sites = tuple(dict.fromkeys(site for site, _ in case.order(1)))
    return [sites, *((site,) for site in sites), ()]


def _scale(rate: float) -> float:
    """F.dropout's 1/(1 − p), at the rate as grokexp draws it (16-bit quantised), float32."""
    return float(torch.tensor(QUANTUM / (QUANTUM - round(rate * QUANTUM)), dtype=torch.float32))


def _generators(positions: list[int], seed: int = SEED) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed + m) for m in positions]


def _passes(case: Case, m: int, params, left, right, labels, draw) -> np.ndarray:
    """Member m's accuracy in each pass of the plain network: the passes side by side along
    the pair axis (the network treats every pair alone), ``draw(copy, site, shape)`` giving
    each pass's masks in their order."""
    pairs = torch.stack([left[m], right[m]], dim=1)
    n, copies = pairs.shape[0], len(draw)
    entries = case.order(n)
    drawn: list[list[torch.Tensor]] = [[] for _ in entries]
    for copy in range(copies):  # pass after pass, each pass's masks in their order
        for index, (site, shape) in enumerate(entries):
            drawn[index].append(draw[copy](site, shape))
    masks: dict[str, list[torch.Tensor]] = {}
    for (site, _), parts in zip(entries, drawn, strict=True):
        masks.setdefault(site, []).append(torch.cat(parts))
    with torch.no_grad():
        logits, _ = case.reference(member(params, m))(pairs.repeat(copies, 1), masks)
    right_answers = (logits.argmax(1) == labels[m].repeat(copies)).float()
    return right_answers.view(copies, n).mean(1).numpy()


def _reference_passes(case: Case, params, left, right, labels, rates: list[float],
                      sites: tuple[str, ...], seed: int = SEED) -> np.ndarray:
    """(K, M) accuracies of the plain networks fed the masks grokexp draws."""
    out = []
    for m in range(left.shape[0]):
        gen = torch.Generator().manual_seed(seed + m)

        def draw(rate: float, gen: torch.Generator = gen):
            return lambda site, shape: (keep_mask(shape, rate, gen).float() * _scale(rate)
                                        if site in sites else torch.ones(shape))

        out.append(_passes(case, m, params, left, right, labels, [draw(r) for r in rates]))
    return np.stack(out)


def _agree(ours: np.ndarray, ref: np.ndarray, n: int) -> None:
    """Pass by pass the same accuracy; a pair whose two best logits tie to float rounding
    could flip between two summation orders: one such pair per member at most."""
    assert ours.shape == ref.shape
    assert (np.abs(ours - ref).sum(1) <= 1.0 / n + 1e-9).all(), (ours, ref)


@pytest.mark.parametrize("name", CASES)
def test_every_pass_is_the_reference_fed_the_same_masks(name, monkeypatch) -> None:
    case = CASES[name]()
    arch = case.arch
    params = random_params(arch, K, seed=1)
    left, right, labels = member_pairs(K, N, seed=10)
    rates = torch.tensor(RATES)
    widest = max([math.prod(shape[1:]) for _, shape in case.order(1)] + [P])
    for sites in _site_choices(case):
        ref = _reference_passes(case, params, left, right, labels, RATES, sites)
        if sites:  # dropout moves the answers, so a misaligned mask would show
            assert ref[:, 1:].std(1).min() > 0, sites
        else:
            assert (ref == ref[:, :1]).all()  # no site chosen: every pass is the network
        for fast in _paths(case):
            whole: np.ndarray | None = None
            for positions in POPULATIONS:
                keep = torch.tensor(positions)
                part = {n: t[keep] for n, t in params.items()}
                for floats in (1, 3 * len(positions) * N * widest, 10**9):
                    monkeypatch.setattr(dropout, "CHUNK_FLOATS", floats)
                    got = dropout_accuracies(part, arch, left[keep], right[keep], labels[keep],
                                             rates, sites, _generators(positions), fast).numpy()
                    _agree(got, ref[positions], N)
                    if whole is not None:  # a member's values are its own, whatever the chunk
                        np.testing.assert_array_equal(got, whole[positions])
                    if len(positions) == K and floats == 10**9:
                        whole = got
            assert whole is not None
            np.testing.assert_array_equal(  # the population of one, measured before it
                dropout_accuracies({n: t[3:4] for n, t in params.items()}, arch, left[3:4],
                                   right[3:4], labels[3:4], rates, sites, _generators([3]),
                                   fast).numpy(), whole[3:4])


def test_the_mlp_fast_path_and_the_generic_path_agree(monkeypatch) -> None:
    """Both draw the same masks; they differ only in how the first layer is summed."""
    case = CASES["mlp"]()
    params = random_params(case.arch, K, seed=2)
    left, right, labels = member_pairs(K, N, seed=20)
    rates = torch.tensor(RATES * 2)
    for floats in (3 * K * N * 12, 10**9):  # chunks of three passes (a short last one), all
        monkeypatch.setattr(dropout, "CHUNK_FLOATS", floats)
        for sites in _site_choices(case):
            fast, generic = (dropout_accuracies(params, case.arch, left, right, labels, rates,
                                                sites, _generators(list(range(K))), f).numpy()
                             for f in (True, False))
            _agree(fast, generic, N)


@pytest.mark.parametrize("name", CASES)
def test_mc_dropout_and_the_drc_are_the_reference_passes_mean_and_variance(name) -> None:
    case = CASES[name]()
    params = random_params(case.arch, K, seed=3)
    left, right, labels = member_pairs(K, N, seed=30)
    sites = _site_choices(case)[0]
    mean, var = mc_dropout_accuracy(params, case.arch, left, right, labels, 0.3, 12, sites,
                                    _generators(list(range(K))))
    ref = _reference_passes(case, params, left, right, labels, [0.3] * 12, sites)
    # one flipped pair in one pass moves the mean by 1/(12N) and the variance by about that
    np.testing.assert_allclose(mean.numpy(), ref.mean(1), atol=1.0 / (12 * N) + 1e-6)
    np.testing.assert_allclose(var.numpy(), ref.var(1, ddof=1), atol=2.0 / (12 * N) + 1e-6)
    drc_rates = [0.0, 0.3, 0.6]
    curve = dropout_robustness(params, case.arch, left, right, labels, drc_rates, 4, sites,
                               _generators(list(range(K))))
    ref = _reference_passes(case, params, left, right, labels,
                            [r for r in drc_rates for _ in range(4)], sites)
    np.testing.assert_allclose(curve.numpy(), ref.reshape(K, 3, 4).mean(2),
                               atol=1.0 / (4 * N) + 1e-6)
    plain = np.array([[float((case.reference(member(params, m))(
        torch.stack([left[m], right[m]], 1), None)[0].argmax(1) == labels[m]).float().mean())]
        for m in range(K)])
    np.testing.assert_allclose(curve.numpy()[:, :1], plain, atol=1e-6)  # rate 0: no dropout


@pytest.mark.parametrize("name", CASES)
def test_mc_dropout_agrees_with_f_dropout_within_four_standard_errors(name) -> None:
    """F.dropout's own masks (the global generator, unquantised rate): an independent sample
    of the same distribution; a false failure has a chance below 1e-4 per comparison."""
    case, passes, rate, k = CASES[name](), 300, 0.3, 2
    params = random_params(case.arch, k, seed=4)
    left, right, labels = member_pairs(k, 30, seed=40)
    sites = _site_choices(case)[0]
    mean, var = mc_dropout_accuracy(params, case.arch, left, right, labels, rate, passes,
                                    sites, _generators(list(range(k))))
    torch.manual_seed(5)
    for m in range(k):
        ref = _passes(case, m, params, left, right, labels,
                      [lambda site, shape: F.dropout(torch.ones(shape), rate)] * passes)
        ref_var = float(ref.var(ddof=1))
        assert ref_var > 0 and float(var[m]) > 0
        bound = 4.0 * math.sqrt(float(var[m]) / passes + ref_var / passes)
        assert abs(float(mean[m]) - ref.mean()) <= bound, (m, float(mean[m]), ref.mean())
        c = ref - ref.mean()  # the variance's own standard error, √((m₄ − s⁴)/n), for both
        se = math.sqrt(max(float((c**4).mean() - (c**2).mean() ** 2), 0.0) / passes)
        assert abs(float(var[m]) - ref_var) <= 4.0 * math.sqrt(2.0) * se, (m, float(var[m]))


@pytest.mark.parametrize("name", CASES)
def test_inactive_neurons_are_a_numpy_count(name) -> None:
    """A unit is inactive when it is exactly zero on every training input at every position
    it occurs (the transformer's MLP runs at all three positions)."""
    case = CASES[name]()
    params = random_params(case.arch, K, seed=6)
    left, right, _ = member_pairs(K, 30, seed=60)
    dead, zeros = np.zeros(K), np.zeros(K)
    with torch.no_grad():
        for m in range(K):
            _, acts = case.reference(member(params, m))(torch.stack([left[m], right[m]], 1),
                                                        None)
            layers = [a.numpy().reshape(-1, a.shape[-1]) for a in acts]  # (N·positions, F)
            assert all((a == 0).all(0)[:2].all() for a in layers)  # the units pushed dead
            dead[m] = 100.0 * sum(int((a == 0).all(0).sum()) for a in layers) / sum(
                a.shape[1] for a in layers)
            zeros[m] = sum(int((a == 0).sum()) for a in layers) / sum(a.size for a in layers)
    assert len(set(zeros.tolist())) > 1  # members differ, so misalignment would show
    for positions in POPULATIONS:
        keep = torch.tensor(positions)
        out = activation_sparsity({n: t[keep] for n, t in params.items()}, case.arch,
                                  left[keep], right[keep])
        np.testing.assert_allclose(out["inactive_neurons_pct"].numpy(), dead[positions],
                                   atol=1e-9)
        # a pre-activation that rounds to 0 in one summation order may not in the other
        np.testing.assert_allclose(out["zero_activation_frac"].numpy(), zeros[positions],
                                   atol=1e-4)


def test_without_a_relu_site_there_is_no_inactive_count() -> None:
    gelu = TransformerArch(P, 16, 2, 24, 1, False, "gelu")
    left, right, _ = member_pairs(2, 10, seed=70)
    assert activation_sparsity(random_params(gelu, 2, seed=7), gelu, left, right) == {}
