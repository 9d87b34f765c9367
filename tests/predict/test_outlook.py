"""The load outlook: fits once history suffices, then updates; widens its bound after surprises."""

import numpy as np
import pytest

from opsmind.predict.base import Forecast
from opsmind.predict.outlook import LoadOutlook


class LastValue:
    """A minimal forecaster for these tests: the last value, +10 % as its upper bound."""

    fits = 0

    def fit(self, y: np.ndarray) -> None:
        LastValue.fits += 1
        self.last = float(y[-1])

    def predict(self, h: int, levels: tuple[int, ...] = (80, 95)) -> Forecast:
        mean = np.full(h, self.last)
        return Forecast(mean, dict.fromkeys(levels, mean * 0.9), dict.fromkeys(levels, mean * 1.1), "last")

    def update(self, y_new: np.ndarray) -> None:
        self.last = float(np.asarray(y_new)[-1])


def test_fits_once_history_suffices_then_updates() -> None:
    LastValue.fits = 0
    outlook = LoadOutlook(LastValue, min_history=5, level=80)
    for v in (100.0, 120.0, 90.0, 100.0):
        outlook.observe(v)
    assert LastValue.fits == 0 and outlook.upper(1, 3) == 120.0  # before a fit: the recent maximum
    outlook.observe(100.0)
    assert LastValue.fits == 1 and outlook.model == "last"
    outlook.observe(200.0)
    assert LastValue.fits == 1  # updated, not refitted
    assert outlook.upper(1, 3) == pytest.approx(220.0)


def test_realised_errors_widen_the_bound() -> None:
    outlook = LoadOutlook(LastValue, min_history=2, level=95)
    for v in [100.0, 100.0] + [100.0, 150.0] * 10:  # the last value is a poor guess here
        outlook.observe(v)
    assert outlook.upper(1, 1) > 150.0 * 1.1


def test_bad_arguments_and_non_finite_values() -> None:
    with pytest.raises(ValueError):
        LoadOutlook(LastValue, error_window=1)
    with pytest.raises(ValueError):
        LoadOutlook(LastValue, level=100)
    outlook = LoadOutlook(LastValue, min_history=2)
    outlook.observe(float("nan"))
    outlook.observe(float("inf"))
    assert outlook.upper(1, 1) == 0.0
    with pytest.raises(ValueError):
        outlook.upper(0, 1)
    with pytest.raises(ValueError):
        outlook.upper(1, 31)


def test_a_forecast_near_zero_does_not_blow_up_the_bound() -> None:
    # A load that falls to almost nothing between bursts (Crane input10 at night): as actual/forecast
    # ratios, 5 against a forecast of 0.1 is 50, and the bound at a load of 5 came out at about 330.
    outlook = LoadOutlook(LastValue, min_history=2, level=95)
    for v in [0.1, 5.0] * 15:
        outlook.observe(v)
    # The recent errors are +-4.9: the bound is the last value plus about z (1.64) of those.
    assert 5.5 <= outlook.upper(1, 1) < 15.0


class WideInterval(LastValue):
    """A model whose own 95 % bound is 150 times its forecast, as statsforecast's ETS(M,N,N) gave on
    Crane input10 at a load of 1.5 req/s."""

    def predict(self, h: int, levels: tuple[int, ...] = (80, 95)) -> Forecast:
        mean = np.full(h, self.last)
        return Forecast(mean, dict.fromkeys(levels, mean * 0.5), dict.fromkeys(levels, mean * 150.0), "wide")


def test_the_models_interval_is_capped_by_what_its_realised_errors_support() -> None:
    outlook = LoadOutlook(WideInterval, min_history=2, level=95)
    for v in [1.5, 1.6] * 15:  # errors +-0.1: z x their spread is about 0.16, under 5 % of the forecast
        outlook.observe(v)
    # Capped at 4 x max(0.16, 0.05 x 1.6) above the forecast, not 150 x 1.6 = 240.
    assert outlook.upper(1, 1) == pytest.approx(1.6 + 4 * 1.6449 * 0.1, rel=0.05)
    for v in [1.5, 30.0, 1.5, 1.6, 1.5, 1.6]:  # a burst: the realised bound widens (the cap with it)
        outlook.observe(v)
    assert outlook.upper(1, 1) > 20.0
