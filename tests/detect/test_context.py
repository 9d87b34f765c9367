"""ContextDetector: cold start, NaN/inf, constant series, shape change inside the range, vectorised ==
scalar path, many rows == one by one, memory."""

from __future__ import annotations

import numpy as np

from opsmind.detect.context import ContextDetector, context_series
from tests.detect._synth import STEP, noisy, run


def _saw(n: int, period: int = 8) -> np.ndarray:
    return (np.arange(n) % period).astype(np.float64)


def test_cold_start_is_nan_then_finite() -> None:
    ts, xs = noisy(200)
    s = run(ContextDetector(), ts, xs)
    assert np.isnan(s[:10]).all()
    assert np.isfinite(s[10:]).all() and (s[10:] >= 0).all()


def test_nan_scores_nan_and_is_not_learned_inf_scores_inf() -> None:
    ts, xs = noisy(200)
    det = ContextDetector()
    run(det, ts[:100], xs[:100])
    rows = np.zeros(1, dtype=np.int64)
    before = det.score_many(rows, ts[100:101], xs[100:101]).copy()
    for bad in (np.nan, np.inf, -np.inf):
        v = np.array([bad])
        s = det.score_many(rows, ts[100:101], v)
        assert np.isnan(s[0]) if np.isnan(bad) else s[0] == np.inf
        det.learn_many(rows, ts[100:101], v, np.array([True]))
    np.testing.assert_allclose(det.score_many(rows, ts[100:101], xs[100:101]), before)


def test_constant_series_is_ordinary_and_a_step_either_way_is_novel() -> None:
    ts = np.linspace(1.7e9, 1.7e9 + 300 * STEP, 301)
    for level in (0.0, 7.0, 1e6):
        for delta in (1.0, -1.0):
            xs = np.full(301, level)
            xs[300] = level + delta
            s = run(ContextDetector(), ts, xs)
            assert s[100:300].max() < 0.1
            assert s[300] > 5.0


def test_a_shape_change_inside_the_range_is_novel() -> None:
    # A rising sawtooth (one value per level) learned for 2,000 points, then the same values falling:
    # every value stays inside the learned range (a residual-magnitude detector sees nothing unusual),
    # every transition is new.
    up = _saw(2000)
    down = _saw(200)[::-1].copy()
    xs = np.concatenate([up, down])
    s = context_series(xs)
    assert np.median(s[1000:2000]) < 0.5
    first_cycle = float(np.mean(s[2000:2008]))
    assert first_cycle > 3.0
    # ... and the new shape becomes familiar again (learned online).
    assert np.median(s[2150:2200]) < first_cycle / 4


def test_vectorised_equals_scalar_and_many_rows_equal_one_by_one() -> None:
    series = [noisy(700, seed=k, sigma=1.0 + k)[1] for k in range(3)]
    series.append(_saw(700) + 0.01 * noisy(700, seed=9)[1])
    series[0][300] = np.nan
    series[1][400] = np.inf
    x = np.stack(series, axis=1)
    det = ContextDetector()
    rows = np.arange(len(series))
    ts = np.zeros(len(series))
    together = np.empty_like(x)
    for i in range(len(x)):
        together[i] = det.score_many(rows, ts, x[i])
        det.learn_many(rows, ts, x[i], np.ones(len(series), dtype=bool))
    for k, xs in enumerate(series):
        alone = context_series(xs)
        np.testing.assert_array_equal(np.isnan(together[:, k]), np.isnan(alone))
        np.testing.assert_allclose(np.nan_to_num(together[:, k]), np.nan_to_num(alone), rtol=1e-12)


def test_unlearned_points_leave_the_state_unchanged() -> None:
    ts, xs = noisy(300)
    det = ContextDetector()
    run(det, ts[:200], xs[:200])
    rows = np.zeros(1, dtype=np.int64)
    before = det.score_many(rows, ts[200:201], xs[200:201]).copy()
    det.learn_many(rows, ts[200:201], np.array([1e9]), np.array([False]))
    np.testing.assert_array_equal(det.score_many(rows, ts[200:201], xs[200:201]), before)


def test_memory_per_series_is_reported_and_rows_grow() -> None:
    det = ContextDetector()
    assert 1000 < det.nbytes_per_series < 1500
    det.ensure_rows(5)
    det.ensure_rows(3)
    assert len(det.lo) >= 5 and det.c2.shape[1:] == (64, 8)
