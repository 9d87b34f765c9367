"""The detectors ``opsmind bench nab`` scores: NAB's windowed Gaussian, river HST and OpsMind's MAD."""

from __future__ import annotations

import math

import numpy as np
import pytest

from opsmind.bench.nab_baselines import (
    DETECTORS,
    NOT_ONLINE,
    onsets,
    opsmind_context,
    opsmind_mad,
    windowed_gaussian,
)


def reference_gaussian(values: list[float], window: int, step: int) -> list[float]:
    """The windowed Gaussian as NAB describes it, one record at a time with a list and a step buffer."""
    data: list[float] = []
    buffer: list[float] = []
    mean, std = 0.0, 1.0
    out = []
    for v in values:
        if data:
            z = abs(v - mean) / std
            out.append(1.0 - 0.5 * math.erfc(z / math.sqrt(2.0)))
        else:
            out.append(0.0)
        if len(data) < window:
            data.append(v)
        else:
            buffer.append(v)
            if len(buffer) < step:
                continue
            data = data[step:] + buffer
            buffer = []
        mean, std = float(np.mean(data)), float(np.std(data))
        std = std or 1e-6
    return out


def series(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = 10 + np.sin(np.arange(n) / 15) + rng.normal(0, 0.3, n)
    values[n // 2] += 8  # a spike
    return np.arange(n, dtype=np.float64) * 300.0, values


def test_windowed_gaussian_matches_the_record_by_record_description() -> None:
    ts, values = series(400)
    values[:20] = 5.0  # a constant start: std 0 becomes 1e-6
    got = windowed_gaussian(ts, values, window=50, step=7)
    want = reference_gaussian(values.tolist(), window=50, step=7)
    assert np.allclose(got, want, rtol=0, atol=1e-9)
    assert got[0] == 0.0
    assert got[200] > 0.999  # the spike


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_detectors_are_online(name: str) -> None:
    """The score of row i depends on rows 0..i only: changing the future leaves the past unchanged."""
    ts, values = series(600)
    changed = values.copy()
    changed[400:] = 1000.0 + np.arange(200)
    a = DETECTORS[name](ts, values)
    b = DETECTORS[name](ts, changed)
    assert a.shape == (600,)
    # A reference that is told the file's range in advance is marked as such, and is indeed not online.
    assert np.array_equal(a[:400], b[:400]) is (name not in NOT_ONLINE)
    assert not np.array_equal(a[400:], b[400:])
    assert np.all(np.isfinite(a))


def test_opsmind_mad_is_zero_in_cold_start_and_flags_the_spike() -> None:
    ts, values = series(300)
    s = opsmind_mad(ts, values)
    assert np.all(s[:30] == 0.0)  # min_points = 30
    assert np.all((s >= 0.0) & (s <= 1.0))
    assert s[150] > 0.5  # above the detector's own threshold (probability 0.5)
    assert np.median(s[30:]) < 0.2


def test_onsets_keep_only_a_new_maximum_within_the_refractory() -> None:
    s = np.array([0.0, 3.0, 2.0, 4.0, np.nan, 1.0, 0.5, 0.2])
    np.testing.assert_array_equal(onsets(s, refractory=2), [0.0, 3.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0])


def test_opsmind_context_is_zero_in_cold_start_and_flags_a_shape_change() -> None:
    # A rising sawtooth, then falling: the values never leave their range, the transitions are new.
    values = np.concatenate([np.arange(3000) % 8, (np.arange(300) % 8)[::-1]]).astype(np.float64)
    ts = np.linspace(1.7e9, 1.7e9 + (len(values) - 1) * 300.0, len(values))
    s = opsmind_context(ts, values)
    assert np.all(s[:10] == 0.0)
    assert np.all((s >= 0.0) & (s < 1.0))
    onset = int(np.argmax(s[2000:])) + 2000
    assert 3000 <= onset < 3010
    assert s[onset] > s[1000:3000].max()
