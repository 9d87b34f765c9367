"""The load outlook: refits on a cadence, follows a level change between refits, widens on surprise."""

import numpy as np
import pytest

from opsmind.predict.base import Forecast
from opsmind.predict.outlook import LoadOutlook


class LastValue:
    """A minimal forecaster for these tests: the last value, +-10 % as its 80 % interval."""

    fits = 0

    def fit(self, y: np.ndarray) -> None:
        LastValue.fits += 1
        self.last = float(y[-1])

    def predict(self, h: int, levels: tuple[int, ...] = (80, 95)) -> Forecast:
        mean = np.full(h, self.last)
        return Forecast(mean, dict.fromkeys(levels, mean * 0.9), dict.fromkeys(levels, mean * 1.1), "last")

    def update(self, y_new: np.ndarray) -> None:
        self.last = float(np.asarray(y_new)[-1])


def test_refits_every_cadence_once_history_suffices() -> None:
    LastValue.fits = 0
    outlook = LoadOutlook(LastValue, refit_every=10, min_history=5, level=80)
    for _ in range(4):
        outlook.observe(100.0)
    assert outlook.refits == 0 and outlook.upper(1, 3) == 100.0  # before a fit: the recent maximum
    for _ in range(26):
        outlook.observe(100.0)
    assert outlook.refits == 3  # at 5, 15 and 25 observations
    assert outlook.upper(1, 3) == pytest.approx(110.0)


def test_level_correction_follows_a_hotter_period_between_refits() -> None:
    outlook = LoadOutlook(LastValue, refit_every=1000, min_history=5, level=80, level_window=5)
    for _ in range(5):
        outlook.observe(100.0)
    for _ in range(5):
        outlook.observe(150.0)  # the model still says 100
    assert outlook.refits == 1
    assert outlook.upper(1, 2) >= 150.0


def test_bad_arguments_and_non_finite_values() -> None:
    with pytest.raises(ValueError):
        LoadOutlook(LastValue, refit_every=0)
    with pytest.raises(ValueError):
        LoadOutlook(LastValue, level=100)
    outlook = LoadOutlook(LastValue, min_history=2)
    outlook.observe(float("nan"))
    outlook.observe(float("inf"))
    assert outlook.upper(1, 1) == 0.0
    with pytest.raises(ValueError):
        outlook.upper(0, 1)
