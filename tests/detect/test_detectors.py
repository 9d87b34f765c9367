"""Contract tests shared by every ensemble detector: cold start, NaN/inf, constant series, spike, shift,
vectorised == one by one, state growth."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from opsmind.detect.base import Detector
from opsmind.detect.cusum import CusumDetector
from opsmind.detect.ewma import EwmaDetector
from opsmind.detect.seasonal import SeasonalDetector
from opsmind.detect.spectral_residual import SpectralResidualDetector
from tests.detect._synth import noisy, run

FACTORIES: dict[str, Callable[[], Detector]] = {
    "seasonal": SeasonalDetector,
    "ewma": EwmaDetector,
    "cusum": CusumDetector,
    "spectral_residual": SpectralResidualDetector,
}
NAMES = sorted(FACTORIES)
# Score that counts as an alarm in these raw-score tests (calibration is tested separately).
ALARM = {"seasonal": 5.0, "ewma": 5.0, "cusum": 1.0, "spectral_residual": 3.0}


@pytest.mark.parametrize("name", NAMES)
def test_cold_start_is_nan_then_finite(name: str) -> None:
    ts, xs = noisy(200)
    s = run(FACTORIES[name](), ts, xs)
    assert np.isnan(s[0])
    assert np.isfinite(s[60:]).all()
    assert (s[60:] >= 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_nan_scores_nan_and_is_not_learned_inf_scores_inf(name: str) -> None:
    ts, xs = noisy(200)
    det = FACTORIES[name]()
    run(det, ts[:100], xs[:100])
    rows = np.zeros(1, dtype=np.int64)
    before = det.score_many(rows, ts[100:101], xs[100:101]).copy()
    for bad in (np.nan, np.inf, -np.inf):
        v = np.array([bad])
        s = det.score_many(rows, ts[100:101], v)
        assert np.isnan(s[0]) if np.isnan(bad) else s[0] == np.inf
        det.learn_many(rows, ts[100:101], v, np.array([True]))
    after = det.score_many(rows, ts[100:101], xs[100:101])
    np.testing.assert_allclose(after, before)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("level", [0.0, 7.0, 1e6])
def test_constant_series_scores_zero_and_a_change_is_anomalous(name: str, level: float) -> None:
    ts = 1.7e9 + np.arange(200) * 300.0
    xs = np.full(200, level)
    det = FACTORIES[name]()
    s = run(det, ts, xs)
    assert (s[60:] == 0).all()
    rows = np.zeros(1, dtype=np.int64)
    jump = det.score_many(rows, ts[-1:] + 300.0, np.array([level + 1.0 + abs(level) * 0.1]))
    assert jump[0] >= ALARM[name] or name == "cusum"


@pytest.mark.parametrize("name", NAMES)
def test_series_resting_at_zero_with_blips_does_not_alarm_on_every_point(name: str) -> None:
    rng = np.random.default_rng(3)
    ts = 1.7e9 + np.arange(600) * 300.0
    xs = np.where(rng.random(600) < 0.1, 1.0, 0.0)
    s = run(FACTORIES[name](), ts, xs)
    assert np.mean(s[100:] >= ALARM[name]) < 0.15  # the blips themselves are 10 % of the points


@pytest.mark.parametrize("name", ["seasonal", "ewma", "spectral_residual"])
def test_spike_is_detected(name: str) -> None:
    ts, xs = noisy(400, seed=1)
    xs[300] += 10.0
    s = run(FACTORIES[name](), ts, xs, learn_all=True)
    assert s[300] >= ALARM[name]
    assert s[300] == np.nanmax(s[60:])


@pytest.mark.parametrize("name", NAMES)
def test_level_shift_is_detected(name: str) -> None:
    ts, xs = noisy(400, seed=2)
    xs[300:] += 6.0
    s = run(FACTORIES[name](), ts, xs)
    assert np.nanmax(s[300:305]) >= ALARM[name]
    assert np.mean(s[60:295] >= ALARM[name]) < 0.02


def test_seasonal_detector_picks_the_daily_period_and_scores_it_low() -> None:
    rng = np.random.default_rng(4)
    n = 288 * 4
    ts = 1.7e9 + np.arange(n) * 300.0
    xs = 100 + 20 * np.sin(2 * np.pi * ts / 86400.0) + rng.normal(size=n)
    det = SeasonalDetector()
    s = run(det, ts, xs)
    assert det.chosen(np.zeros(1, dtype=np.int64))[0] == 2  # daily
    assert np.nanmedian(s[-288:]) < 1.5


@pytest.mark.parametrize("name", NAMES)
def test_vectorised_equals_one_by_one(name: str) -> None:
    n_series, n = 5, 150
    data = [noisy(n, seed=10 + i, level=10.0 * i, sigma=1.0 + i) for i in range(n_series)]
    for i, (_, xs) in enumerate(data):
        xs[100 + i] += 20.0
    one = [run(FACTORIES[name](), ts, xs) for ts, xs in data]
    det = FACTORIES[name]()
    rows = np.arange(n_series, dtype=np.int64)[::-1].copy()  # any row order
    many = np.empty((n_series, n))
    for j in range(n):
        ts = np.array([data[r][0][j] for r in rows])
        xs = np.array([data[r][1][j] for r in rows])
        s = det.score_many(rows, ts, xs)
        det.learn_many(rows, ts, xs, np.ones(n_series, dtype=bool))
        many[rows, j] = s
    np.testing.assert_allclose(many, np.array(one), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_state_grows_and_scoring_does_not_change_state(name: str) -> None:
    det = FACTORIES[name]()
    det.ensure_rows(3)
    rows = np.array([0, 1, 2], dtype=np.int64)
    ts, xs = np.full(3, 1.7e9), np.ones(3)
    det.learn_many(rows, ts, xs, np.ones(3, dtype=bool))
    det.ensure_rows(1000)
    det.ensure_rows(10)  # never shrinks
    far = np.array([999], dtype=np.int64)
    assert np.isnan(det.score_many(far, ts[:1], xs[:1])[0])
    a = det.score_many(rows, ts, xs)
    b = det.score_many(rows, ts, xs)
    np.testing.assert_array_equal(a, b)
    assert 0 < det.nbytes_per_series <= 2500
