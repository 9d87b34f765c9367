"""Burn-rate alerts on hand-computed cases: minute counts of 1,000 events, SLO 99.9 % over 30 days."""

from __future__ import annotations

import numpy as np
import pytest

from opsmind.predict.slo import DAY, HOUR, SLO, WORKBOOK_RULES, evaluate, evaluate_bad_fraction

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
    # 50,000 events, 1,000 bad... over 3 days: 4,320,000 events, 1,000 bad = 0.0231 % of 0.1 %.
    assert report.budget_remaining == pytest.approx(1 - (1000 / 4_320_000) / 0.001)
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


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        SLO(1.0)
    with pytest.raises(ValueError):
        evaluate(SLO_999, [2.0, 1.0], [1, 1], [1, 1])
    with pytest.raises(ValueError):
        evaluate(SLO_999, [1.0, 2.0], [2, 1], [1, 1])
