from __future__ import annotations

import numpy as np

from opsmind.detect.calibrate import Calibrator


def test_probability_is_monotone_bounded_and_handles_nan_inf() -> None:
    cal = Calibrator.for_detector("ewma")
    scores = np.array([0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 1e6, np.inf, np.nan])
    rows = np.zeros(len(scores), dtype=np.int64)
    p = cal.probability(rows, scores)
    finite = p[:-1]
    assert ((finite >= 0.0) & (finite <= 1.0)).all()
    assert (np.diff(finite) >= 0).all()
    assert p[-2] == 1.0 and np.isnan(p[-1])
    q = cal.tail(rows, scores)
    np.testing.assert_allclose(p[:-1], 1.0 - q[:-1])


def test_calibration_adapts_per_series() -> None:
    cal = Calibrator(0.5, 0.4)
    quiet, busy = np.array([0]), np.array([1])
    rng = np.random.default_rng(0)
    for _ in range(2000):
        cal.learn(quiet, np.abs(rng.normal(size=1)), np.array([True]))
        cal.learn(busy, 5.0 * np.abs(rng.normal(size=1)), np.array([True]))
    s = np.array([6.0])
    assert cal.probability(quiet, s)[0] > 0.999 > cal.probability(busy, s)[0]


def test_unlearned_and_nonfinite_scores_do_not_move_the_state() -> None:
    cal = Calibrator(0.5, 0.4)
    rows = np.array([0, 1, 2])
    cal.ensure_rows(3)
    t, e = cal.t.copy(), cal.e.copy()
    cal.learn(rows, np.array([np.nan, np.inf, 3.0]), np.array([True, True, False]))
    np.testing.assert_array_equal(cal.t, t)
    np.testing.assert_array_equal(cal.e, e)
