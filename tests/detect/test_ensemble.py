from __future__ import annotations

import numpy as np

from opsmind.detect.ensemble import Ensemble
from tests.detect._synth import noisy


def test_spike_and_shift_are_flagged_without_alarming_on_noise() -> None:
    ts, xs = noisy(800, seed=5)
    xs[500] += 12.0
    xs[650:] += 8.0
    ens = Ensemble()
    p = ens.score_series(ts, xs)
    assert np.isnan(p[0])
    alarm = ens.is_anomalous(p)
    assert alarm[500] and alarm[650]
    assert alarm[100:495].sum() <= 2
    assert ((p[40:] >= 0) & (p[40:] <= 1)).all()


def test_lasting_shift_stops_alarming_after_a_bounded_time() -> None:
    ts, xs = noisy(900, seed=6)
    xs[500:] += 10.0
    ens = Ensemble(relearn_after=10)
    p = ens.score_series(ts, xs)
    alarm = ens.is_anomalous(p)
    assert alarm[500:503].all()  # the onset alarms; the calibrator widens its tail as the shift persists
    assert alarm[700:].sum() <= 3


def test_self_protection_spike_is_not_learned() -> None:
    ts, xs = noisy(400, seed=7)
    ens = Ensemble()
    ens.step(["a"], ts[:1], xs[:1])
    for i in range(1, 300):
        ens.step(["a"], ts[i : i + 1], xs[i : i + 1])
    quiet = ens.score_many(["a"], ts[300:301], xs[300:301])
    out = ens.step(["a"], ts[300:301], np.array([1e4]))
    assert ens.is_anomalous(out.probability)[0]
    after = ens.score_many(["a"], ts[300:301], xs[300:301])
    # The models did not learn the spike: the same ordinary point gets the same expected value and
    # stays ordinary (CUSUM's accumulator remembers the spike on purpose; it measures persistence).
    assert after.expected[0] == quiet.expected[0]
    assert not ens.is_anomalous(after.probability)[0]
    assert after.surprise[0] < 2.5


def test_score_many_has_no_side_effects_and_handles_nan_inf() -> None:
    ens = Ensemble()
    ts, xs = noisy(100, seed=8)
    for i in range(100):
        ens.step(["a", "b"], np.full(2, ts[i]), np.array([xs[i], 2 * xs[i]]))
    keys = ["a", "b", "c"]
    vals = np.array([np.nan, np.inf, 1.0])
    t = np.full(3, ts[-1] + 300.0)
    first = ens.score_many(keys, t, vals)
    second = ens.score_many(keys, t, vals)
    np.testing.assert_array_equal(first.probability, second.probability)
    assert np.isnan(first.probability[0]) and first.probability[1] == 1.0
    assert np.isnan(first.probability[2])  # a new series is cold
    assert set(first.per_detector) == {"seasonal", "ewma", "cusum", "spectral_residual"}
    assert np.isfinite(first.expected[1])


def test_vectorised_step_equals_score_series() -> None:
    data = [noisy(200, seed=20 + i, level=5.0 * (i + 1)) for i in range(3)]
    data[1][1][150] += 30.0
    ens = Ensemble()
    keys = ["x", "y", "z"]
    many = np.empty((3, 200))
    for j in range(200):
        out = ens.step(keys, np.array([d[0][j] for d in data]), np.array([d[1][j] for d in data]))
        many[:, j] = out.probability
    for i, (ts, xs) in enumerate(data):
        np.testing.assert_allclose(many[i], Ensemble().score_series(ts, xs), rtol=1e-9, equal_nan=True)


def test_memory_budget() -> None:
    assert Ensemble().nbytes_per_series <= 4096


def test_onset_series_keeps_only_the_first_point_of_an_ongoing_anomaly() -> None:
    import numpy as np

    from opsmind.detect.ensemble import Ensemble

    rng = np.random.default_rng(4)
    values = 10 + rng.normal(0, 0.2, 1200)
    values[800:] += 8.0  # a lasting shift: one onset, then quiet
    ts = np.arange(1200, dtype=np.float64) * 60.0
    onset = Ensemble().onset_series(ts, values, refractory=200)
    surprise = np.nan_to_num(Ensemble().surprise_series(ts, values), nan=0.0)
    assert onset[800] > 3 and onset[800] == surprise[800]
    assert (onset[801:1000] == 0).all() or onset[801:1000].max() > surprise[800]
    assert (onset >= 0).all() and (onset <= np.maximum(surprise, 0) + 1e-9).all()
