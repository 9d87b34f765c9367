"""Burn-rate alerts on hand-computed cases: minute counts of 1,000 events, SLO 99.9 % over 30 days."""

from __future__ import annotations

import numpy as np
import pytest

from opsmind.predict.slo import DAY, HOUR, SLO, WORKBOOK_RULES, Budget, evaluate, evaluate_bad_fraction

SLO_999 = SLO(0.999)
PER_MIN = 1000.0


def minutes(bad_ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = 60.0 * np.arange(1, bad_ratio.size + 1)
    total = np.full(bad_ratio.size, PER_MIN)
    return t, total * (1 - bad_ratio), total


def test_workbook_thresholds_for_30_days() -> None:
    assert [round(r.threshold(SLO_999), 6) for r in WORKBOOK_RULES] == [14.4, 6.0, 3.0, 1.0]


def test_clean_traffic_fires_nothing_and_keeps_the_budget() -> None:
    t, good, total = minutes(np.zeros(3 * 24 * 60))
    report = evaluate(SLO_999, t, good, total)
    assert report.alerts == ()
    assert report.severity is None
    assert report.budget_remaining == pytest.approx(1.0)


def test_burst_fires_only_the_fast_page() -> None:
    # 3 clean days, then 50 minutes at 2 % errors (burn 20).
    ratio = np.zeros(3 * 24 * 60)
    ratio[-50:] = 0.02
    t, good, total = minutes(ratio)
    report = evaluate(SLO_999, t, good, total)
    # 1 h: 50/60 * 20 = 16.7 > 14.4; 5 m: 20. 6 h: 50/360 * 20 = 2.8 < 6. 1 d: 0.69 < 3. 3 d: 0.23 < 1.
    assert report.window_burn[HOUR] == pytest.approx(50 / 60 * 20)
    assert report.window_burn[6 * HOUR] == pytest.approx(50 / 360 * 20)
    assert [(a.severity, a.long_s, a.short_s) for a in report.alerts] == [("page", HOUR, 300.0)]
    assert report.severity == "page"
    # 1,000 bad events in 3 days of 1,000 a minute; 30 days at that rate allow 43,200 (0.1 %): 2.31 %
    # of the budget is spent. (The 3 days' error ratio over the budget, 23 %, is their burn, not this.)
    assert report.budget.covered_s == 3 * DAY
    assert report.budget.spent == pytest.approx(1000 / 43_200)
    assert report.budget_remaining == pytest.approx(1 - 1000 / 43_200)
    assert "14.4x" in report.alerts[0].reason


def test_slow_burn_fires_only_tickets() -> None:
    # 0.35 % errors for 2 days: burn 3.5 on every window - below both page thresholds (14.4, 6),
    # above both ticket thresholds (3, 1).
    t, good, total = minutes(np.full(2 * 24 * 60, 0.0035))
    report = evaluate(SLO_999, t, good, total)
    assert {a.severity for a in report.alerts} == {"ticket"}
    assert [a.long_s for a in report.alerts] == [DAY, 3 * DAY]
    assert all(a.long_burn == pytest.approx(3.5) for a in report.alerts)


def test_one_x_burn_over_three_days_fires_only_the_slowest_ticket() -> None:
    t, good, total = minutes(np.full(3 * 24 * 60, 0.0015))
    report = evaluate(SLO_999, t, good, total)
    assert [(a.severity, a.long_s) for a in report.alerts] == [("ticket", 3 * DAY)]


def test_recovery_clears_the_short_window_first() -> None:
    ratio = np.zeros(3 * 24 * 60)
    ratio[-56:-6] = 0.02  # the same 50-minute burst, then 6 clean minutes
    t, good, total = minutes(ratio)
    report = evaluate(SLO_999, t, good, total)
    # The whole burst is still inside the last hour (burn 16.7 > 14.4), but the last 5 minutes are clean.
    assert report.window_burn[HOUR] == pytest.approx(50 / 60 * 20)
    assert report.window_burn[300.0] == 0.0
    assert report.alerts == ()
    # And at the minute the burst ended, it was still firing.
    during = evaluate(SLO_999, t, good, total, now=float(t[-7]))
    assert during.severity == "page"


def test_bad_fraction_input_matches_counts() -> None:
    ratio = np.zeros(3 * 24 * 60)
    ratio[-50:] = 0.02
    t, good, total = minutes(ratio)
    from_fraction = evaluate_bad_fraction(SLO_999, t, ratio)
    from_counts = evaluate(SLO_999, t, good, total)
    assert [a.severity for a in from_fraction.alerts] == [a.severity for a in from_counts.alerts] == ["page"]
    for window, burn in from_counts.window_burn.items():
        assert from_fraction.window_burn[window] == pytest.approx(burn)


def test_no_traffic_does_not_page() -> None:
    t = 60.0 * np.arange(1, 100)
    report = evaluate(SLO_999, t, np.zeros(99), np.zeros(99))
    assert report.alerts == ()
    assert report.budget_remaining == 1.0


def test_overspent_budget_is_negative() -> None:
    # 0.2 % errors over the whole 30-day period spends twice the budget.
    t = 3600.0 * np.arange(1, 30 * 24 + 1)
    report = evaluate_bad_fraction(SLO_999, t, np.full(t.size, 0.002))
    assert report.budget_remaining == pytest.approx(-1.0)


def test_windows_longer_than_the_data_are_not_reported_as_covered() -> None:
    # The audit's case: 90 minutes of data at burn 4.17. The 2 h, 6 h, 1 d and 3 d windows all read 4.17
    # as if each were covered, the 1 d and 3 d tickets fired claiming "41.7 % of the budget spent in 3d",
    # and the budget read -317 % left. 90 minutes at 4.17x spend 0.87 % of a 30-day budget.
    burn = 4.17
    t, good, total = minutes(np.full(90, burn * 0.001))
    report = evaluate(SLO_999, t, good, total)
    for length in (2 * HOUR, 6 * HOUR, DAY, 3 * DAY):
        w = report.windows[length]
        assert not w.complete and w.covered_s == 90 * 60.0 and w.coverage == pytest.approx(5400 / length)
        assert w.burn == pytest.approx(burn)  # over the 90 minutes there are, and labelled so
        assert "90 min of" in w.label()
    assert sorted(report.window_burn) == [300.0, 1800.0, HOUR]  # only the windows the data cover
    assert report.alerts == ()
    assert report.budget.covered_s == 90 * 60.0
    assert report.budget.spent == pytest.approx(burn * 1.5 / 720)
    assert report.budget_remaining == pytest.approx(1 - burn * 1.5 / 720)


def test_a_partly_covered_window_fires_once_its_share_is_really_spent() -> None:
    # A fresh service failing every request (burn 1,000) for 20 minutes has spent 46.3 % of its 30-day
    # budget: every rule's share is spent within its long window, though no window is covered but 5 m.
    t, good, total = minutes(np.ones(20))
    report = evaluate(SLO_999, t, good, total)
    assert [(a.severity, a.long_s) for a in report.alerts] == [
        ("page", HOUR),
        ("page", 6 * HOUR),
        ("ticket", DAY),
        ("ticket", 3 * DAY),
    ]
    spent = 1000 * 1200 / (30 * DAY)
    assert all(a.budget_spent == pytest.approx(spent) for a in report.alerts)
    assert report.budget.spent == pytest.approx(spent)
    three_days = report.alerts[-1].reason
    assert (
        "over the 20 min of 3d with data" in three_days
        and "46.3% of the 30d error budget spent in 20 min" in three_days
    )
    # The 1 h rule's 2 % is spent 23 times over: the most significant, the one an incident reports.
    assert report.top_alert is report.alerts[0]


def test_a_partly_covered_long_window_short_of_its_share_does_not_fire() -> None:
    # Burn 14.5 over 50 minutes: above the 1 h rule's 14.4, but 50 minutes of it spend 1.68 % of the
    # budget, not the rule's 2 % in an hour. One more clean-free hour-long stretch and it would fire.
    t, good, total = minutes(np.full(50, 0.0145))
    assert evaluate(SLO_999, t, good, total).alerts == ()
    t, good, total = minutes(np.full(60, 0.0145))
    assert [a.long_s for a in evaluate(SLO_999, t, good, total).alerts] == [HOUR]


def test_a_budget_exactly_half_spent() -> None:
    # Three days at burn 5 spend 5 x 3 / 30 = half the budget; the alert, the budget and the time left
    # agree: the other half lasts 0.5 x 30 days / 5 = 3 days more at that burn.
    t, good, total = minutes(np.full(3 * 24 * 60, 0.005))
    report = evaluate(SLO_999, t, good, total)
    assert report.budget.spent == pytest.approx(0.5)
    assert report.budget_remaining == pytest.approx(0.5)
    top = report.top_alert
    assert top is not None and top.long_s == 3 * DAY and top.budget_spent == pytest.approx(0.5)
    assert "50.0% of the 30d error budget spent in 3d" in top.reason
    assert report.exhausted_in_s == pytest.approx(3 * DAY)
    assert report.budget.summary(top.long_burn) == (
        "50.0% of the 30d error budget spent in the 3.0 days of data, 50.0% left: "
        "at 5x it is spent in 3.0 days"
    )
    # And as a whole period at half the budget's error ratio.
    hours = 3600.0 * np.arange(1, 30 * 24 + 1)
    whole = evaluate_bad_fraction(SLO_999, hours, np.full(hours.size, 0.0005))
    assert whole.budget.covered_s == 30 * DAY and whole.budget_remaining == pytest.approx(0.5)


def test_time_to_exhaustion() -> None:
    budget = Budget(SLO_999, error_ratio=0.002, burn=2.0, covered_s=3 * DAY)  # 20 % spent
    assert budget.remaining == pytest.approx(0.8)
    assert budget.lasts_s(2.0) == pytest.approx(0.8 * 30 * DAY / 2)  # 12 days
    assert budget.lasts_s(14.4) == pytest.approx(0.8 * 30 * DAY / 14.4)
    assert budget.lasts_s(0.0) == float("inf")
    assert "spent never" in budget.summary(0.0)
    overspent = Budget(SLO_999, error_ratio=0.004, burn=4.0, covered_s=9 * DAY)  # 120 % spent
    assert overspent.remaining == pytest.approx(-0.2) and overspent.lasts_s(4.0) == 0.0
    assert overspent.summary(4.0) == "the 30d error budget is spent: 120.0% of it in the 9.0 days of data"


def test_a_series_that_stopped_is_not_covered_after_its_last_sample() -> None:
    # An hour at burn 20, then nothing for a day: the budget spent is the hour's (and the two minutes a
    # late scrape is waited for), not 25 hours' at 20x.
    t, good, total = minutes(np.full(60, 0.02))
    report = evaluate(SLO_999, t, good, total, now=float(t[-1]) + DAY)
    assert report.budget.covered_s == HOUR + 120.0
    assert report.budget.spent == pytest.approx(20 * (HOUR + 120.0) / (30 * DAY))
    assert report.windows[HOUR].covered_s == 0.0 and report.windows[HOUR].burn == 0.0


def test_a_tick_between_scrapes_or_after_one_missed_still_covers_the_windows() -> None:
    t, good, total = minutes(np.full(3 * 24 * 60, 0.0015))
    for late in (0.0, 59.9, 119.9):
        report = evaluate(SLO_999, t, good, total, now=float(t[-1]) + late)
        assert all(w.complete for w in report.windows.values()), late
        assert [a.long_s for a in report.alerts] == [3 * DAY]
    stale = evaluate(SLO_999, t, good, total, now=float(t[-1]) + 600)
    assert not stale.windows[300.0].complete and stale.windows[300.0].covered_s == 0.0


def test_each_sample_weighs_the_time_it_stands_for() -> None:
    # A month read from hourly rollups, its last 6 hours raw every 15 s (as the stage reads it): the
    # rollups at 0.2 % errors (burn 2), the raw scrapes clean. Weighed one to one, the 1,440 clean raw
    # points outweighed 714 hours of errors and the month read as a third of its real burn.
    hourly = 3600.0 * np.arange(1, 715)
    raw = hourly[-1] + 15.0 * np.arange(1, 1441)
    t = np.concatenate((hourly, raw))
    f = np.concatenate((np.full(hourly.size, 0.002), np.zeros(raw.size)))
    report = evaluate_bad_fraction(SLO_999, t, f, rules=())
    assert report.budget.covered_s == pytest.approx(30 * DAY)
    assert report.budget.spent == pytest.approx(2 * 714 / 720, rel=0.01)


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        SLO(1.0)
    with pytest.raises(ValueError):
        evaluate(SLO_999, [2.0, 1.0], [1, 1], [1, 1])
    with pytest.raises(ValueError):
        evaluate(SLO_999, [1.0, 2.0], [2, 1], [1, 1])
