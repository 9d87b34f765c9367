"""Test doubles shared by several test packages (each says where it stands in for what, and why)."""

from __future__ import annotations

import numpy as np

from opsmind.predict.base import Forecast


class LastValue:
    """A fast stand-in for the statsforecast forecaster (:class:`opsmind.predict.forecast.LoadForecaster`)
    where a test is about what the stages do with a forecast, not about forecasting: the last value seen,
    with +-10 % as every interval (a subclass may set other ``low`` / ``high`` factors)."""

    low = 0.9
    high = 1.1

    def fit(self, y: np.ndarray) -> None:
        self.last = float(y[-1])

    def update(self, y_new: np.ndarray) -> None:
        self.last = float(y_new[-1])

    def predict(self, h: int, levels: tuple[int, ...] = (80, 95)) -> Forecast:
        mean = np.full(h, self.last)
        lo, hi = dict.fromkeys(levels, mean * self.low), dict.fromkeys(levels, mean * self.high)
        return Forecast(mean, lo, hi, "last")
