"""Data hygiene: every rule on its own, many rows at once, and random garbage that must never crash it."""

from __future__ import annotations

import numpy as np
import pytest

from opsmind.detect.hygiene import (
    COUNTER_PRIMED,
    DUPLICATE,
    KEPT,
    NON_FINITE,
    OUT_OF_ORDER,
    Cleaned,
    Hygiene,
    counter_rates,
    is_counter,
)


def feed(h: Hygiene, ts: list[float], values: list[float], row: int = 0) -> list[Cleaned]:
    """Feed one series point by point, as the detect stage does."""
    return [
        h.clean_many(np.array([row], np.int64), np.array([t], np.float64), np.array([v], np.float64))
        for t, v in zip(ts, values, strict=True)
    ]


def one(results: list[Cleaned], field: str) -> list[object]:
    return [getattr(r, field)[0].item() for r in results]


def test_first_points_pass_untouched() -> None:
    h = Hygiene()
    out = h.clean_many(np.array([0, 1, 2]), np.array([10.0, 10.0, 11.0]), np.array([1.0, -5.0, 3.0]))
    assert out.keep.tolist() == [True, True, True]
    assert out.values.tolist() == [1.0, -5.0, 3.0]
    assert not out.gap.any() and not out.constant.any()
    assert h.counts.kept == 3


def test_duplicate_timestamp_is_dropped_and_counted() -> None:
    h = Hygiene()
    r = feed(h, [1.0, 2.0, 2.0, 3.0], [1.0, 2.0, 99.0, 3.0])
    assert one(r, "keep") == [True, True, False, True]
    assert one(r, "reason")[2] == DUPLICATE
    assert h.counts.duplicates == 1


def test_out_of_order_is_dropped_and_counted() -> None:
    h = Hygiene()
    r = feed(h, [1.0, 5.0, 3.0, 6.0], [1.0, 2.0, 3.0, 4.0])
    assert one(r, "keep") == [True, True, False, True]
    assert one(r, "reason")[2] == OUT_OF_ORDER
    assert h.counts.out_of_order == 1


def test_non_finite_points_never_reach_a_detector() -> None:
    h = Hygiene()
    r = feed(h, [1.0, 2.0, 3.0, float("nan"), 4.0], [1.0, float("nan"), float("inf"), 2.0, 5.0])
    assert one(r, "keep") == [True, False, False, False, True]
    assert one(r, "reason")[1:4] == [NON_FINITE] * 3
    assert h.counts.non_finite == 3
    # A dropped point changes nothing: timestamp 2 and 3 were never "seen", so 4 is in order.
    assert one(r, "values")[4] == 5.0


def test_gap_is_flagged_against_the_typical_interval() -> None:
    h = Hygiene(gap_factor=3.0)
    ts = [0.0, 15.0, 30.0, 45.0, 60.0, 300.0, 315.0]
    r = feed(h, ts, [1.0] * len(ts))
    assert one(r, "gap") == [False, False, False, False, False, True, False]
    assert h.counts.gaps == 1


def test_a_lasting_change_of_interval_stops_being_a_gap() -> None:
    h = Hygiene(gap_factor=3.0)
    ts = [15.0 * i for i in range(10)] + [135.0 + 60.0 * i for i in range(1, 20)]
    gaps = one(feed(h, ts, [1.0] * len(ts)), "gap")
    assert any(gaps) and not any(gaps[-5:])


def test_constant_series_is_flagged_after_n_points() -> None:
    h = Hygiene(constant_after=5)
    r = feed(h, [float(i) for i in range(8)], [2.0] * 6 + [3.0, 3.0])
    assert one(r, "constant") == [False, False, False, False, True, True, False, False]


def test_counter_becomes_a_rate_and_a_reset_restarts_from_zero() -> None:
    h = Hygiene()
    h.mark_counters(np.array([0]), ["http_requests_total"])
    r = feed(h, [0.0, 10.0, 20.0, 30.0, 40.0], [100.0, 150.0, 250.0, 30.0, 90.0])
    assert one(r, "reason")[0] == COUNTER_PRIMED
    assert one(r, "keep") == [False, True, True, True, True]
    assert one(r, "values")[1:] == [5.0, 10.0, 3.0, 6.0]  # reset at t=30: 30 / 10 s
    assert h.counts.counter_resets == 1 and h.counts.counter_primed == 1


def test_counter_rates_function_matches_prometheus_reset_rule() -> None:
    t, rates = counter_rates(np.array([0.0, 10.0, 20.0, 20.0, 30.0]), np.array([5.0, 25.0, 5.0, 7.0, 15.0]))
    assert t.tolist() == [10.0, 20.0, 30.0]
    assert rates.tolist() == [2.0, 0.5, 0.8]
    assert counter_rates(np.array([1.0]), np.array([1.0]))[1].size == 0


def test_is_counter_follows_the_naming_convention() -> None:
    assert is_counter("http_requests_total") and is_counter("pod_restarts_total")
    assert not is_counter("request_rate") and not is_counter("total_bytes")


def test_many_rows_at_once_and_repeated_rows_in_one_call() -> None:
    h = Hygiene()
    rows = np.array([0, 1, 0, 1, 0])
    ts = np.array([1.0, 1.0, 2.0, 1.0, 1.5])
    out = h.clean_many(rows, ts, np.arange(5.0))
    # Row 0: 1, 2, then 1.5 (out of order); row 1: 1, then 1 again (duplicate).
    assert out.keep.tolist() == [True, True, True, False, False]
    assert out.reason.tolist() == [KEPT, KEPT, KEPT, DUPLICATE, OUT_OF_ORDER]


def test_mismatched_lengths_are_a_caller_error() -> None:
    with pytest.raises(ValueError):
        Hygiene().clean_many(np.array([0, 1]), np.array([1.0]), np.array([1.0]))


@pytest.mark.parametrize("seed", range(25))
def test_random_garbage_never_crashes_and_never_leaks_non_finite_values(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h = Hygiene(gap_factor=2.0, constant_after=3)
    h.mark_counters(np.arange(3), ["a_total", "b", "c_total"])
    garbage = np.array([np.nan, np.inf, -np.inf, 1e308, -1e308, 0.0, -1.0, 5e-324, 1.0])
    fed = 0
    for _ in range(40):
        n = int(rng.integers(0, 12))
        rows = rng.integers(0, 6, n)
        ts = np.where(rng.random(n) < 0.3, rng.choice(garbage, n), rng.integers(0, 20, n).astype(float))
        values = np.where(rng.random(n) < 0.5, rng.choice(garbage, n), rng.normal(0, 1e6, n))
        out = h.clean_many(rows, ts, values)
        fed += n
        assert np.isfinite(out.values[out.keep]).all()
        assert np.isnan(out.values[~out.keep]).all()
        assert not (out.gap & ~out.keep).any() and not (out.constant & ~out.keep).any()
    c = h.counts
    total = c.kept + c.non_finite + c.duplicates + c.out_of_order + c.counter_primed
    assert total == fed and min(c.as_dict().values()) >= 0
