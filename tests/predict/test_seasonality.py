"""detect_periods on generated series: a real cycle, a cycle explained by a shorter one, noise,
trend, NaN, constant and short input."""

from __future__ import annotations

import numpy as np

from opsmind.predict.seasonality import autocorrelation, detect_periods, fill_linear

RNG = np.random.default_rng(7)


def daily(n: int, period: int = 48, amp: float = 5.0, noise: float = 1.0) -> np.ndarray:
    t = np.arange(n)
    return 20 + amp * np.sin(2 * np.pi * t / period) + RNG.normal(0, noise, n)


def test_finds_a_daily_cycle() -> None:
    assert detect_periods(daily(480), candidates=(48, 336)) == [48]


def test_finds_a_weekly_cycle_on_top_of_the_daily_one() -> None:
    t = np.arange(336 * 3)
    weekend = ((t // 48) % 7 >= 5) * -6.0
    assert detect_periods(daily(t.size) + weekend, candidates=(48, 336)) == [48, 336]


def test_a_multiple_of_a_found_period_is_not_a_new_one() -> None:
    assert detect_periods(daily(336 * 3), candidates=(48, 336)) == [48]


def test_needs_min_cycles() -> None:
    y = daily(150)  # 3.1 cycles of 48
    assert detect_periods(y, candidates=(48,), min_cycles=4) == []
    assert detect_periods(y, candidates=(48,), min_cycles=2) == [48]


def test_noise_trend_and_random_walk_have_no_period() -> None:
    assert detect_periods(RNG.normal(0, 1, 2000), candidates=(48, 100)) == []
    assert detect_periods(np.arange(2000.0), candidates=(48, 100)) == []
    assert detect_periods(np.cumsum(RNG.normal(0, 1, 2000)), candidates=(48, 100)) == []


def test_degenerate_input_returns_nothing() -> None:
    for y in (np.array([]), np.array([1.0]), np.full(500, 3.0), np.full(500, np.nan)):
        assert detect_periods(y, candidates=(48,)) == []


def test_nan_gaps_are_tolerated() -> None:
    y = daily(480)
    y[100:130] = np.nan
    y[::17] = np.nan
    assert detect_periods(y, candidates=(48,)) == [48]


def test_fill_linear_and_autocorrelation() -> None:
    assert fill_linear(np.array([np.nan, 1.0, np.nan, 3.0, np.nan])).tolist() == [1, 1, 2, 3, 3]
    assert autocorrelation(np.full(10, 2.0), 2) == 0.0
    assert autocorrelation(np.arange(5.0), 9) == 0.0
