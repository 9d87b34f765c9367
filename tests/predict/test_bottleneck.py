"""Bottleneck warnings from hand-made forecasts: normal intervals with sigma 10 around a chosen mean."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from opsmind.predict.base import Forecast
from opsmind.predict.bottleneck import (
    LATENCY_SLO_RISK,
    SATURATION,
    breach_risk,
    exceedance_probability,
    replicas_over,
    warn,
)
from opsmind.predict.capacity import CapacityModel

NOW = 1_700_000_000.0
CAP = CapacityModel.known(capacity_per_replica=70.0, saturation_per_replica=100.0)


def normal_forecast(mean: np.ndarray, sigma: float = 10.0) -> Forecast:
    lo, hi = {}, {}
    for level in (80, 95):
        z = float(norm.ppf(0.5 + level / 200))
        lo[level], hi[level] = mean - z * sigma, mean + z * sigma
    return Forecast(mean=mean, lo=lo, hi=hi, model="test")


def test_probability_matches_the_normal_inside_and_beyond_the_intervals() -> None:
    f = normal_forecast(np.full(5, 100.0))
    p = exceedance_probability(f, np.array([100.0, 90.0, 112.0, 125.0, 70.0]))
    expected = norm.sf(np.array([0.0, -1.0, 1.2, 2.5, -3.0]))
    np.testing.assert_allclose(p, expected, atol=0.01)


def test_probability_respects_an_asymmetric_interval() -> None:
    # Upper side twice as wide as the lower: 130 is 1.5 upper-sigmas above the mean.
    z80 = float(norm.ppf(0.9))
    f = Forecast(np.array([100.0]), lo={80: np.array([100 - 10 * z80])}, hi={80: np.array([100 + 20 * z80])})
    assert exceedance_probability(f, 130.0)[0] == pytest.approx(norm.sf(1.5), abs=1e-6)
    assert exceedance_probability(f, 95.0)[0] == pytest.approx(norm.sf(-0.5), abs=0.01)


def test_without_intervals_the_mean_decides() -> None:
    f = Forecast(np.array([50.0, 150.0]))
    np.testing.assert_array_equal(exceedance_probability(f, 100.0), [0.0, 1.0])


def test_ramp_warns_of_latency_slo_risk_eleven_minutes_ahead() -> None:
    # 4 replicas x 70 = 280 within the SLO, 400 at saturation; load climbs 8/min from 204.
    mean = 204 + 8.0 * np.arange(20)  # step 9 (10 min): 276, p=0.34; step 10 (11 min): 284, p=0.66
    [w] = warn("api", normal_forecast(mean), 60.0, NOW, replicas=4, capacity=CAP)
    assert w.kind == LATENCY_SLO_RISK
    assert w.lead_s == 660.0 and w.at == NOW + 660.0
    assert w.probability == pytest.approx(norm.sf(-0.4), abs=0.01)
    assert not w.imminent
    assert "280" in w.evidence and "4 replicas" in w.evidence


def test_replicas_on_their_way_avert_the_warning() -> None:
    mean = 204 + 8.0 * np.arange(20)
    assert warn("api", normal_forecast(mean), 60.0, NOW, 4, CAP, scheduled=[(480.0, 6)]) == []
    risk = breach_risk(normal_forecast(mean), 60.0, 4, CAP, scheduled=[(480.0, 6)])
    assert risk.replicas[6] == 4 and risk.replicas[7] == 6


def test_a_breach_beyond_fifteen_minutes_is_not_warned_yet() -> None:
    mean = 204 + 3.0 * np.arange(40)  # crosses 280 after ~26 minutes
    assert warn("api", normal_forecast(mean), 60.0, NOW, 4, CAP) == []


def test_saturation_comes_first_and_an_ongoing_breach_is_imminent() -> None:
    mean = np.full(15, 450.0)
    warnings = warn("api", normal_forecast(mean), 60.0, NOW, 4, CAP)
    assert [w.kind for w in warnings] == [SATURATION, LATENCY_SLO_RISK]
    assert all(w.imminent and w.lead_s == 60.0 for w in warnings)


def test_replicas_over_applies_schedule_in_order() -> None:
    np.testing.assert_array_equal(replicas_over(4, 60.0, 2, [(180.0, 5), (60.0, 3)]), [3, 3, 5, 5])


def test_refuses_an_unusable_capacity_model() -> None:
    bad = CapacityModel(ok=False, reason="too few samples", latency_slo=0.1)
    with pytest.raises(ValueError, match="too few samples"):
        breach_risk(normal_forecast(np.ones(3)), 60.0, 1, bad)
