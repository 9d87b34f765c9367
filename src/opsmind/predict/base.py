"""The forecasting contract every predictor builds on.

A forecaster learns one series (evenly spaced, oldest first), predicts ``h`` steps ahead with
prediction intervals, and takes new observations between refits without a full refit. Levels are
central interval coverages in percent (80 -> the 10th and 90th percentiles).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True, slots=True)
class Forecast:
    """``mean[i]`` is the forecast ``i + 1`` steps after the last observation; ``lo[level][i]`` and
    ``hi[level][i]`` bound the central ``level`` percent interval. ``model`` names what produced it
    (a fallback says so, e.g. ``"SeasonalNaive (MSTL failed: ...)"``)."""

    mean: np.ndarray
    lo: dict[int, np.ndarray] = field(default_factory=dict)
    hi: dict[int, np.ndarray] = field(default_factory=dict)
    model: str = ""


class Forecaster(Protocol):
    def fit(self, y: np.ndarray) -> None: ...

    def predict(self, h: int, levels: tuple[int, ...] = (80, 95)) -> Forecast: ...

    def update(self, y_new: np.ndarray) -> None: ...
