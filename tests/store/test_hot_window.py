"""The detectors' in-memory ring buffers."""

from __future__ import annotations

import numpy as np
import pytest

from opsmind.store import HotWindow

T0 = 1_700_000_000.0


def test_window_is_oldest_first_and_float64() -> None:
    h = HotWindow(5)
    for i in range(3):
        h.append("a", T0 + i, float(i))
    ts, values = h.window("a")
    assert ts.dtype == values.dtype == np.float64
    assert ts.tolist() == [T0, T0 + 1, T0 + 2] and values.tolist() == [0.0, 1.0, 2.0]
    assert h.count("a") == 3 and len(h) == 1


def test_unknown_key_is_empty() -> None:
    h = HotWindow(5)
    ts, values = h.window("nope")
    assert len(ts) == len(values) == 0 and h.count("nope") == 0 and len(h) == 0


def test_wraparound_keeps_the_newest_points() -> None:
    h = HotWindow(4)
    for i in range(11):
        h.append("a", T0 + 15 * i, float(i))
    ts, values = h.window("a")
    assert values.tolist() == [7.0, 8.0, 9.0, 10.0]
    assert ts.tolist() == [T0 + 15 * i for i in range(7, 11)]
    assert h.count("a") == 4


def test_rows_grow_by_doubling_and_keep_data() -> None:
    h = HotWindow(3, initial_series=2)
    for i in range(100):
        h.append(f"s{i}", T0, float(i))
        h.append(f"s{i}", T0 + 1, float(i) + 0.5)
    assert len(h) == 100
    assert [h.index_of(f"s{i}") for i in (0, 50, 99)] == [0, 50, 99]
    assert h.window("s0")[1].tolist() == [0.0, 0.5]
    assert h.window("s99")[1].tolist() == [99.0, 99.5]
    assert h.nbytes < 100 * (3 * 8 + 64) * 2  # about 8 bytes a point plus a few counters per row


def test_memory_is_about_eight_bytes_per_point() -> None:
    h = HotWindow(1000, initial_series=1000)
    assert h.nbytes / (1000 * 1000) < 8.1


def test_out_of_order_and_duplicate_points_are_dropped_and_counted() -> None:
    h = HotWindow(10)
    h.append("a", T0 + 10, 1.0)
    h.append("a", T0 + 5, 2.0)  # older than the newest
    h.append("a", T0 + 10, 3.0)  # the same timestamp again, e.g. a retried delivery
    h.append("a", float("nan"), 4.0)
    h.append("a", T0 + 11, 5.0)
    assert h.window("a")[1].tolist() == [1.0, 5.0]
    assert (h.dropped_out_of_order, h.dropped_duplicates) == (2, 1)


def test_timestamps_survive_rebasing() -> None:
    h = HotWindow(4)
    stamps = [T0, T0 + 0.25, T0 + 100_000.5, T0 + 300_000.75, T0 + 300_001.0]
    for i, t in enumerate(stamps):
        h.append("a", t, float(i))
    ts, _ = h.window("a")
    assert np.allclose(ts, stamps[1:], rtol=0, atol=1e-3)


def test_append_many_matches_sequential_appends() -> None:
    rng = np.random.default_rng(7)
    for _ in range(100):
        capacity, n_series = int(rng.integers(1, 12)), int(rng.integers(1, 6))
        seq, vec = HotWindow(capacity, initial_series=1), HotWindow(capacity, initial_series=1)
        keys = [f"k{i}" for i in range(n_series)]
        rows = np.array([vec.index_of(k) for k in keys])
        for call in range(4):
            n = int(rng.integers(0, 30))
            which = rng.integers(0, n_series, n)
            # Whole seconds in a range wide enough to rebase, with repeats and reversals on purpose.
            ts = T0 + np.round(rng.uniform(0, 200_000, n))
            if call % 2:
                ts.sort()
            values = rng.normal(size=n)
            for r, t, v in zip(which, ts, values, strict=True):
                seq.append(keys[r], float(t), float(v))
            vec.append_many(rows[which], ts, values)
        assert (vec.dropped_out_of_order, vec.dropped_duplicates) == (
            seq.dropped_out_of_order,
            seq.dropped_duplicates,
        )
        for k in keys:
            (ts_s, v_s), (ts_v, v_v) = seq.window(k), vec.window(k)
            assert np.array_equal(v_s, v_v)
            assert np.allclose(ts_s, ts_v, rtol=0, atol=0.02)  # float32 offsets from different bases


def test_append_many_applies_points_of_one_row_in_order() -> None:
    h = HotWindow(3)
    a, b = h.index_of("a"), h.index_of("b")
    rows = np.array([a, b, a, a, b, a, a])
    ts = T0 + np.array([1.0, 1.0, 2.0, 1.5, 3.0, 3.0, 4.0])  # a: 1, 2, (1.5 dropped), 3, 4 -> last three
    h.append_many(rows, ts, np.arange(7.0))
    assert h.window("a")[1].tolist() == [2.0, 5.0, 6.0]
    assert h.window("b")[1].tolist() == [1.0, 4.0]
    assert h.dropped_out_of_order == 1
    h.append_many(np.array([b, b]), np.array([T0 + 3.0, T0 + 2.0]), np.array([9.0, 9.0]))
    assert (h.dropped_duplicates, h.dropped_out_of_order) == (1, 2)


def test_append_many_validates_input() -> None:
    h = HotWindow(3)
    h.index_of("a")
    with pytest.raises(IndexError):
        h.append_many(np.array([1]), np.array([T0]), np.array([1.0]))
    with pytest.raises(ValueError):
        h.append_many(np.array([0, 0]), np.array([T0]), np.array([1.0]))
    h.append_many(np.array([], dtype=np.int64), np.array([]), np.array([]))
    assert h.count("a") == 0
