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
