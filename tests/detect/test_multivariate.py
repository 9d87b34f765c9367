"""The multivariate detector: correlation breaks are found, normal data is not, a cold start is quiet."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from opsmind.detect.multivariate import MultivariateScore, ServiceMultivariate

Vectors = npt.NDArray[np.float64]


def normal(rng: np.random.Generator, n: int) -> Vectors:
    """Traffic, latency, errors, CPU: latency and CPU rise with traffic, as a loaded service's do."""
    traffic = rng.normal(100.0, 15.0, n)
    latency = 0.2 + 0.002 * (traffic - 100.0) + rng.normal(0.0, 0.005, n)
    errors = 0.01 + rng.normal(0.0, 0.002, n)
    cpu = 0.4 + 0.003 * (traffic - 100.0) + rng.normal(0.0, 0.01, n)
    return np.c_[traffic, latency, errors, cpu]


def feed(
    det: ServiceMultivariate, service: str, X: Vectors, t0: float = 0.0
) -> list[MultivariateScore | None]:
    return [det.update(service, t0 + 15.0 * i, x) for i, x in enumerate(X)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_correlation_break_is_found_though_each_signal_is_in_range(seed: int) -> None:
    rng = np.random.default_rng(seed)
    det = ServiceMultivariate(refit_every=100, buffer=500, n_estimators=50)
    X = normal(rng, 300)
    feed(det, "checkout", X)
    # High traffic with LOW latency: requests failing fast or not served. Each value alone is ordinary.
    breaks = np.array([[125.0, 0.17, 0.01, 0.475], [75.0, 0.25, 0.01, 0.325], [130.0, 0.2, 0.01, 0.49]])
    assert ((breaks >= X.min(axis=0)) & (breaks <= X.max(axis=0))).all()
    for i, b in enumerate(breaks):
        r = det.update("checkout", 1e6 + i, b)
        assert r is not None and r.anomalous and r.probability > 0.5, r


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_normal_data_is_not_flagged(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    det = ServiceMultivariate(refit_every=100, buffer=500, n_estimators=50)
    scores = [r for r in feed(det, "checkout", normal(rng, 800)) if r is not None]
    flagged = sum(r.anomalous for r in scores)
    assert len(scores) > 700 and flagged <= 1
    assert np.median([r.probability for r in scores]) < 0.05


def test_cold_start_returns_none_then_fits_and_refits_on_schedule() -> None:
    rng = np.random.default_rng(7)
    det = ServiceMultivariate(refit_every=50, buffer=200, min_fit=64)
    out = feed(det, "s", normal(rng, 64))
    assert all(r is None for r in out) and det.fitted("s") and det.fits("s") == 1
    out = feed(det, "s", normal(rng, 100), t0=10_000.0)
    assert all(r is not None for r in out) and det.fits("s") == 3


def test_anomalies_are_not_learned_unless_they_last() -> None:
    rng = np.random.default_rng(3)
    det = ServiceMultivariate(refit_every=10, buffer=200, relearn_after=20)
    feed(det, "s", normal(rng, 200))
    shifted = normal(rng, 60)
    shifted[:, 1] -= 0.1  # latency drops for good: a new normal after relearn_after vectors
    out = feed(det, "s", shifted, t0=1e5)
    assert all(r is not None and r.anomalous for r in out[:15])
    assert not any(r is not None and r.anomalous for r in out[-10:])


def test_services_are_independent_and_bad_input_is_ignored() -> None:
    rng = np.random.default_rng(5)
    det = ServiceMultivariate(min_fit=16, buffer=64)
    feed(det, "a", normal(rng, 20))
    assert det.fitted("a") and not det.fitted("b") and "b" not in det
    assert det.update("a", 1e9, [np.nan, 1.0, 1.0, 1.0]) is None
    assert det.update("a", 1e9, [np.inf, 1.0, 1.0, 1.0]) is None
    assert det.update("a", 0.0, [100.0, 0.2, 0.01, 0.4]) is None  # not after the last timestamp
    assert det.update("a", 1e9, []) is None
    # Different length: the signals changed, the service starts over.
    assert det.update("a", 1e9 + 1, [1.0, 2.0]) is None and not det.fitted("a")
    det.reset("a")
    assert "a" not in det


def test_constant_buffer_and_huge_values_do_not_crash() -> None:
    det = ServiceMultivariate(min_fit=16, buffer=32, refit_every=8)
    for i in range(40):
        det.update("flat", float(i), [1.0, 2.0, 3.0])
    same = det.update("flat", 100.0, [1.0, 2.0, 3.0])
    moved = det.update("flat", 101.0, [1.0, 2.5, 3.0])
    huge = det.update("flat", 102.0, [1e308, -1e308, 3.0])
    assert same is not None and not same.anomalous
    assert moved is not None and moved.anomalous
    assert huge is not None and huge.probability == 1.0


def test_calibration_is_half_at_the_threshold() -> None:
    det = ServiceMultivariate(threshold=4.0)
    assert det.calibrate(4.0) == 0.5 and det.calibrate(-1.0) == 0.0 and det.calibrate(float("inf")) == 1.0
    assert det.calibrate(float("nan")) == 0.0 and 0.9 < det.calibrate(20.0) < 1.0


def test_invalid_configuration_is_refused() -> None:
    with pytest.raises(ValueError):
        ServiceMultivariate(min_fit=4)
    with pytest.raises(ValueError):
        ServiceMultivariate(buffer=10, min_fit=20)
    with pytest.raises(ValueError):
        ServiceMultivariate(refit_every=0)


def test_scoring_many_at_once_is_scoring_one_by_one() -> None:
    """update_many (a backfill) gives what update gives vector by vector: same scores, same refits, same
    self-protection, with the rows it must ignore (NaN, a stale timestamp, another shape) in the run."""
    rng = np.random.default_rng(11)
    X = normal(rng, 400)
    X[150:190] = [150.0, 0.1, 0.2, 0.9]  # an incident: not learned, until relearn_after in a row
    rows: list[list[float]] = [list(x) for x in X]
    stamps = [15.0 * i for i in range(len(rows))]
    rows[200] = [float("nan")] * 4
    stamps[230] = stamps[229]  # a duplicate timestamp
    rows.insert(300, [1.0, 2.0])  # another shape: the service's signals changed, its state starts over
    stamps.insert(300, stamps[299] + 1.0)

    def detector() -> ServiceMultivariate:
        return ServiceMultivariate(refit_every=40, buffer=150, min_fit=32, relearn_after=25, n_estimators=30)

    one, many = detector(), detector()
    expected = [one.update("s", t, x) for t, x in zip(stamps, rows, strict=True)]
    got = many.update_many("s", stamps, rows)
    assert [e is None for e in expected] == [g is None for g in got]
    pairs = [(e, g) for e, g in zip(expected, got, strict=True) if e is not None and g is not None]
    assert sum(e.anomalous for e, _ in pairs) >= 20  # the incident was seen, so self-protection ran
    for e, g in pairs:
        assert e.anomalous == g.anomalous and g.z == pytest.approx(e.z, rel=1e-9, abs=1e-9)
    assert many.fits("s") == one.fits("s")
    with pytest.raises(ValueError, match="2 timestamps but 1 vectors"):
        many.update_many("s", [1.0, 2.0], [[1.0, 2.0]])
