"""The load a scaler must be ready for: an upper forecast quantile over the next few steps.

A scaler asks every sync period "how much load may arrive before a pod I start now is ready?". The
outlook keeps one forecaster per series: it is fitted once enough history exists, then fed each new
observation through ``update`` (the forecaster re-estimates on its own cadence; between refits it only
runs its fitted model forward, which costs well under a millisecond). The answer is the larger of

* the model's own upper ``level`` bound, and
* a bound from the **realised** one-step errors: the mean times ``1 + z x`` the spread of the recent
  actual/forecast ratios (``error_window`` steps), so a model that has been surprised lately is not
  trusted to its own, narrower interval.

Steps are the forecaster's steps (one minute for the traces); the caller keeps time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from statistics import NormalDist

import numpy as np

from opsmind.predict.base import Forecast, Forecaster


class LoadOutlook:
    def __init__(
        self,
        make_forecaster: Callable[[], Forecaster],
        *,
        level: int = 95,
        error_window: int = 30,
        min_history: int = 60,
        max_ahead: int = 30,
    ) -> None:
        if error_window < 2 or min_history < 1 or max_ahead < 1:
            raise ValueError("error_window must be >= 2, min_history and max_ahead >= 1")
        if not 0 < level < 100:
            raise ValueError(f"level must be a percentage in (0, 100), got {level}")
        self._make = make_forecaster
        self.level = level
        self.min_history = min_history
        self.max_ahead = max_ahead
        self._z = NormalDist().inv_cdf(level / 100.0)
        self._history: list[float] = []  # kept only until the first fit
        self._forecaster: Forecaster | None = None
        self._latest: Forecast | None = None
        self._ratios: deque[float] = deque(maxlen=error_window)
        self.model = "none yet"

    def observe(self, value: float) -> None:
        """One new observation (NaN and inf are skipped)."""
        if not np.isfinite(value):
            return
        value = max(float(value), 0.0)
        if self._latest is not None:
            expected = float(self._latest.mean[0])
            if expected > 0 and np.isfinite(expected):
                self._ratios.append(value / expected)
        if self._forecaster is None:
            self._history.append(value)
            if len(self._history) < self.min_history:
                return
            self._forecaster = self._make()
            self._forecaster.fit(np.asarray(self._history, dtype=float))
            self._history = []
        else:
            self._forecaster.update(np.array([value]))
        self._latest = self._forecaster.predict(self.max_ahead, levels=(self.level,))
        self.model = self._latest.model

    def upper(self, ahead_from: int, ahead_to: int) -> float:
        """The largest upper bound over steps ``ahead_from..ahead_to`` after the last observation
        (1 = the next step). Before the first fit: the largest recent observation."""
        if ahead_from < 1 or ahead_to < ahead_from or ahead_to > self.max_ahead:
            raise ValueError(f"bad look-ahead range {ahead_from}..{ahead_to} (at most {self.max_ahead})")
        if self._latest is None:
            return max(self._history[-30:], default=0.0)
        mean = self._latest.mean[ahead_from - 1 : ahead_to]
        model_hi = self._latest.hi.get(self.level, mean)[ahead_from - 1 : ahead_to]
        bound = np.asarray(model_hi, dtype=float)
        if len(self._ratios) >= 5:
            ratios = np.asarray(self._ratios)
            bias = float(np.median(ratios))
            spread = float(np.std(ratios))
            bound = np.maximum(bound, mean * (bias + self._z * spread))
        finite = bound[np.isfinite(bound)]
        return float(finite.max()) if finite.size else 0.0
