"""Lead times, separation and forecasts on synthetic members whose onsets are known."""

from __future__ import annotations

import math

import numpy as np

from grokexp.forecast.history import indicator_series, member_from_points, target_epochs
from grokexp.forecast.predict import extrapolate, prune_reason
from grokexp.forecast.report import analyse, table_text
from grokexp.grokking import rise_epoch
from grokexp.series import MemberSeries

EPOCHS = np.arange(0, 3001, 10)
BUDGET = 3000


def step(at: float) -> np.ndarray:
    return (EPOCHS >= at).astype(float)


def put(member: MemberSeries, name: str, values: np.ndarray) -> None:
    """A column on the member's evaluated epochs."""
    member.columns[name] = ([int(e) for e in target_epochs(member)], [float(v) for v in values])


def member(label: str, rise: int | None, generalises: bool = True,
           epochs: np.ndarray = EPOCHS) -> MemberSeries:
    """Train acc 1 from epoch 100; test acc 0.1 → 1 at ``rise`` (never when None); "leads"
    steps 300 epochs before the rise, "lags" 100 after; "early" is 1 for members that
    generalise; "linear" reaches 1 exactly at the test grok epoch, with the same slope."""
    test = 0.1 + 0.9 * step(rise) if rise is not None else np.full(EPOCHS.shape, 0.1)
    on = rise if rise is not None else 10**9
    series = {"test_acc": test, "train_acc": step(100),
              "leads": step(on - 300), "lags": step(on + 100),
              "early": np.full(EPOCHS.shape, 1.0 if generalises else 0.0),
              "linear": 1 + (EPOCHS - on) / 2000.0}
    keep = np.isin(EPOCHS, epochs)
    points = {name: dict(zip(EPOCHS[keep].tolist(), v[keep].tolist(), strict=True))
              for name, v in series.items()}
    return member_from_points(label, points, BUDGET)


def population() -> list[MemberSeries]:
    return [member("a", 1000), member("b", 1400), member("c", 1800), member("d", 2600),
            member("never1", None, False), member("never2", None, False)]


def test_lead_times_are_the_known_ones_less_the_smoothing_lag():
    report = analyse(population())
    rows = {r.name: r for r in report.indicators}
    # a step at s is found at s + 20 (three of five trailing values moved): lead 300 − 20
    assert rows["leads"].lead_median == 280 and rows["leads"].lead_min == 280
    assert rows["leads"].first == 4 and rows["leads"].rising == 4
    assert rows["lags"].lead_median == -120 and rows["lags"].first == 0
    # delay = rise − 100 (the train grok epoch): shares 280/900, 280/1300, 280/1700, 280/2500
    assert abs(rows["leads"].lead_share_median - np.median([280 / 1300, 280 / 1700])) < 1e-12
    assert rows["early"].auc == 1.0 and rows["early"].auc_members == 6
    assert rows["leads"].auc == 0.5  # everyone still 0 at the early epoch (600)
    assert "test_acc" not in rows
    text = table_text(report)
    assert "leads" in text and "280" in text


def test_a_linear_indicator_is_forecast_exactly_when_calibrated_on_the_others():
    from grokexp.forecast import report as rep

    old = dict(rep.FORECASTERS)
    rep.FORECASTERS.clear()
    rep.FORECASTERS["linear"] = "linear"
    try:
        report = analyse(population())
    finally:
        rep.FORECASTERS.clear()
        rep.FORECASTERS.update(old)
    linear = next(f for f in report.forecasts if f.method == "linear")
    assert linear.held_out == 4 and linear.mdape is not None and linear.mdape < 1e-9
    by_label = {m.label: m.forecasts["linear"] for m in report.members}
    assert abs(by_label["c"] - 1800) < 1e-6
    # the members that never generalise: "linear" starts far below 1 and rises by 1/2000
    # per epoch, so the forecast is huge, beyond the budget: judged right
    assert linear.within_budget_right == linear.judged == 6
    naive = next(f for f in report.forecasts if f.method == "median of the others")
    assert naive.mdape > 0.1


def test_extrapolation_directions_and_the_prune_rule():
    e = np.arange(0, 101, 10)
    # a least-squares line: exact up to rounding (1e-9 epochs)
    assert abs(extrapolate(e, 0.01 * e, 100, 2.0) - 200) < 1e-9  # rising 0.01 per epoch to 2
    assert abs(extrapolate(e, 5 - 0.01 * e, 100, 3.0) - 200) < 1e-9  # falling to 3
    assert extrapolate(e, np.full(e.shape, 0.5), 100, 0.9) == math.inf  # flat
    assert extrapolate(e, 0.01 * e, 100, 0.5) == 100  # already past the level
    assert prune_reason(math.inf, 3000, None).startswith("forecast: never")
    assert prune_reason(3500, 3000, None) == "forecast 3500 beyond the budget 3000"
    assert prune_reason(1600, 3000, 1000) is not None and prune_reason(1400, 3000, 1000) is None


def test_derived_indicators():
    t = member("a", 1000)
    put(t, "weight_norm", np.exp(-EPOCHS / 1000.0))
    put(t, "train_loss", np.exp(-EPOCHS / 500.0) * (1 + 0.1 * (-1.0) ** np.arange(len(EPOCHS))))
    ind = indicator_series(t)
    np.testing.assert_allclose(ind["log_weight_norm_sq"], -2 * EPOCHS / 1000.0, atol=1e-12)
    ratio = ind["log_norm_ratio"]
    assert np.isnan(ratio[:10]).all() and ratio[10] == 0  # memorised at epoch 100
    np.testing.assert_allclose(ratio[11:], -2 * (EPOCHS[11:] - 100) / 1000.0, atol=1e-12)
    # log loss = −t/500 ± log(1.1), log(0.9) alternating: the second difference is ±(2·log 1.1
    # − 2·log 0.9) (the linear trend drops out), so its RMS is that constant
    want = 2 * (np.log(1.1) - np.log(0.9))
    np.testing.assert_allclose(ind["loss_oscillation"][20:], want, rtol=1e-9)


def test_the_delay_law_is_exact_on_members_that_follow_it():
    """log ‖θ‖² falls from 5 at memorisation (epoch 100) at c · lr · wd per epoch and the
    member generalises when it reaches 3: T = 100 + 2 / (c · lr · wd), c · lr = 1e-3."""
    from grokexp.forecast.report import DELAY_LAW

    trajs = []
    for wd in (1.0, 2.0, 1.25, 0.8):
        grok = 100 + round(2 / (1e-3 * wd))
        t = member(f"wd{wd}", grok)
        t.lr, t.weight_decay = 1e-3, wd
        log_sq = np.where(EPOCHS < 100, 5.0, 5.0 - 1e-3 * wd * (EPOCHS - 100))
        put(t, "weight_norm", np.exp(log_sq / 2))
        trajs.append(t)
    trajs.append(member("never", None, False))  # no lr: no delay-law forecast
    report = analyse(trajs)
    law = next(f for f in report.forecasts if f.method == DELAY_LAW)
    assert law.held_out == 4 and law.mdape < 1e-9
    assert abs(report.members[0].forecasts[DELAY_LAW] - 2100) < 1e-6
    assert report.members[-1].forecasts[DELAY_LAW] is None


def test_the_oscillation_score_is_causal():
    """A spike in the loss at index 5 changes the score from index 5 on, never before: the
    second difference at i is x[i-2] − 2x[i-1] + x[i] (a forward one would show it at 4)."""
    t = member("a", 1000)
    flat = np.exp(-EPOCHS / 500.0)
    put(t, "train_loss", flat)
    base = indicator_series(t)["loss_oscillation"]
    spiked = flat.copy()
    spiked[5] *= 3.0
    put(t, "train_loss", spiked)
    osc = indicator_series(t)["loss_oscillation"]
    assert np.isnan(osc[:2]).all()  # no second difference before three values
    np.testing.assert_array_equal(osc[:5], base[:5])
    # log(3) added at index 5: d2[5] = +log 3, d2[6] = −2 log 3, d2[7] = +log 3; an RMS over
    # the last 10 (here 4 finite values, d2 of the trend is 0 up to rounding) at index 5
    assert abs(osc[5] - np.log(3) / 2) < 1e-9


def test_early_auc_leaves_out_members_already_generalised_or_stopped():
    """A member that generalised by the early epoch (600) has a post-grok value there, one
    that stopped before it a stale one: neither is scored, as in the forecast rows."""
    trajs = population()
    fast = member("fast", 400)  # rose at 400 < 600: leave it out
    put(fast, "early", np.zeros(EPOCHS.shape))  # an AUC < 1 if it were scored as a positive
    stopped = member("stopped", None, False, epochs=EPOCHS[EPOCHS <= 300])
    put(stopped, "early", np.ones(31))  # would make the AUC < 1 if scored as a negative
    report = analyse([*trajs, fast, stopped])
    rows = {r.name: r for r in report.indicators}
    assert rows["early"].auc_members == 6 and rows["early"].auc == 1.0


def test_a_delay_law_with_a_growing_norm_forecasts_nothing():
    """‖θ‖ that grows from memorisation to generalisation gives c < 0: no forecast (None),
    and the members are not counted as judged "beyond the budget"."""
    from grokexp.forecast.report import DELAY_LAW

    trajs = []
    for wd in (1.0, 2.0, 0.5):
        t = member(f"wd{wd}", 1000 + round(100 * wd))
        t.lr, t.weight_decay = 1e-3, wd
        put(t, "weight_norm", np.exp(np.where(EPOCHS < 100, 5.0, 5.0 + 1e-3 * (EPOCHS - 100))))
        trajs.append(t)
    report = analyse(trajs)
    law = next(f for f in report.forecasts if f.method == DELAY_LAW)
    assert all(m.forecasts[DELAY_LAW] is None for m in report.members)
    assert law.judged == 0 and law.held_out == 0 and law.mdape is None


def test_a_forecaster_whose_indicator_some_members_lack_is_reported():
    trajs = population()
    for t in trajs[:4]:
        put(t, "embedding_fourier_share", 1 + (EPOCHS - t.test_grok_epoch) / 2000.0)
    report = analyse(trajs)
    row = next(f for f in report.forecasts if f.method == "embedding_fourier_share")
    assert row.missing == 2 and row.held_out == 4
    assert {m.label: m.forecasts["embedding_fourier_share"] for m in report.members}["never1"] \
        is None
    absent = next(f for f in report.forecasts if f.method == "embedding_cos_structure")
    assert absent.missing == 6 and absent.held_out == 0
    text = table_text(report)
    assert "(2 member(s) lack the indicator)" in text
    assert "embedding_cos_structure                not logged" in text


def test_a_median_lead_of_zero_sorts_between_positive_and_negative():
    trajs = population()
    for t in trajs:
        rise = rise_epoch(*t.columns["test_acc"], 0.5)
        # a step 20 epochs before the rise is found at the rise (the smoothing lag): lead 0
        put(t, "zero", step(rise - 20 if rise is not None else 10**9))
    report = analyse(trajs)
    assert {r.name: r for r in report.indicators}["zero"].lead_median == 0
    rows = [line.split()[0] for line in table_text(report).splitlines()[2:8]]
    assert rows.index("leads") < rows.index("zero") < rows.index("lags")


def test_mdape_leaves_out_a_measured_epoch_of_zero():
    from grokexp.forecast.predict import mdape

    assert mdape([10.0, 110.0], [0.0, 100.0]) == 0.1
    assert mdape([5.0], [0.0]) is None


def test_a_trials_forecast_is_the_upper_median_of_its_seeds_own_delays():
    from grokexp.forecast.predict import trial_forecast

    inf = math.inf
    assert trial_forecast([100.0, 200.0, inf], [50.0] * 3, 500, None, False) == (200, 200, None)
    forecast, _, reason = trial_forecast([100.0, inf], [50.0, 50.0], 500, None, False)
    assert forecast == inf and reason.startswith("forecast: never")  # two seeds: both must
    # seed delays 300 − 100 = 200 and 400 − 300 = 100: upper median 200 > 1.5 × 100. (The
    # grok epochs' median less the memorisation epochs' median, 400 − 300, would be 100.)
    forecast, delay, reason = trial_forecast([300.0, 400.0], [100.0, 300.0], 500, 100.0, True)
    assert (forecast, delay) == (400, 200) and reason == "forecast 200 > 1.5 × the best trial's 100"
    assert trial_forecast([300.0, 400.0], [100.0, 300.0], 500, 140.0, True)[2] is None
    # a seed that has not memorised has no delay yet: the "clearly worse" rule waits
    assert trial_forecast([300.0, 480.0], [100.0, None], 500, 10.0, True) == (480, None, None)
    # … but the budget rule does not
    assert trial_forecast([300.0, 900.0], [100.0, None], 500, 10.0, True)[2] is not None
    # the objective is the test grok epoch: the forecast itself is compared
    assert trial_forecast([300.0, 400.0], [100.0, 300.0], 500, 250.0, False)[2] is not None
