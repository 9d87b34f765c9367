from __future__ import annotations

import math
import random

import pytest

from opsmind.detect.mad import RollingMadDetector, calibrate


def feed(det: RollingMadDetector, key: str, values: list[float], t0: float = 0.0) -> list[bool]:
    flags = []
    for i, v in enumerate(values):
        s = det.score_one(key, v)
        a = det.is_anomalous(s)
        det.learn_one(key, t0 + i, v, a)
        flags.append(a)
    return flags


def test_cold_start_gives_no_score() -> None:
    det = RollingMadDetector(window=50, min_points=10, threshold=5)
    for i in range(10):
        assert det.score_one("s", 1.0) is None
        det.learn_one("s", i, 1.0 + 0.01 * i, False)
    assert det.score_one("s", 1.0) is not None


def test_spike_is_found_and_noise_is_not() -> None:
    rng = random.Random(1)
    det = RollingMadDetector(window=100, min_points=30, threshold=6)
    normal = [10 + rng.gauss(0, 1) for _ in range(300)]
    assert sum(feed(det, "s", normal)) <= 1
    s = det.score_one("s", 40.0)
    assert s is not None and det.is_anomalous(s) and s.probability > 0.9
    assert abs(s.expected - 10) < 1


def test_anomalies_are_not_learned_but_a_lasting_shift_becomes_normal() -> None:
    rng = random.Random(2)
    det = RollingMadDetector(window=40, min_points=20, threshold=6)
    feed(det, "s", [5 + rng.gauss(0, 0.1) for _ in range(60)])
    flags = feed(det, "s", [50 + rng.gauss(0, 0.1) for _ in range(80)], t0=60)
    # The first points of the shift alarm; a bounded time later the new level is normal.
    assert flags[0] and all(flags[: det.relearn_after - 1])
    assert not any(flags[-20:])


def test_constant_series_and_non_finite_values() -> None:
    det = RollingMadDetector(window=20, min_points=5, threshold=6)
    feed(det, "c", [3.0] * 10)
    assert not det.is_anomalous(det.score_one("c", 3.0))
    assert det.is_anomalous(det.score_one("c", 4.0))
    s = det.score_one("c", math.nan)
    assert s is not None and s.probability == 1.0
    det.learn_one("c", 100, math.inf, True)  # never stored
    assert det.history.count("c") == 10


def test_calibration_is_monotonic_and_bounded() -> None:
    ps = [calibrate(x, 6) for x in (0, 1, 6, 12, 100, math.inf)]
    assert ps == sorted(ps) and ps[0] == 0 and ps[2] == 0.5 and ps[-1] == 1.0


def test_vectorised_scoring_matches_one_at_a_time() -> None:
    import numpy as np

    rng = random.Random(3)
    a = RollingMadDetector(window=40, min_points=10, threshold=6)
    b = RollingMadDetector(window=40, min_points=10, threshold=6)
    keys = [f"s{i}" for i in range(30)]
    for step in range(80):
        # Series start at different times, so full, partial and cold-start rows are mixed.
        active = [k for i, k in enumerate(keys) if step >= 2 * i]
        vals = np.array([rng.gauss(5, 1) if rng.random() > 0.05 else 50.0 for _ in active])
        ts = np.full(len(active), float(step))
        rows, scores, expected = a.score_many(active, vals)
        anomalous = scores >= 6
        a.learn_many(active, rows, ts, vals, np.nan_to_num(anomalous, nan=False).astype(bool))
        for j, k in enumerate(active):
            s = b.score_one(k, float(vals[j]))
            b.learn_one(k, float(step), float(vals[j]), b.is_anomalous(s))
            if s is None:
                assert np.isnan(scores[j])
            else:
                assert scores[j] == pytest.approx(s.score, rel=1e-5)
                assert expected[j] == pytest.approx(s.expected, rel=1e-5)
    for k in keys:
        assert np.allclose(a.history.window(k)[1], b.history.window(k)[1])
