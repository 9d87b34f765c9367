"""The load a scaler must be ready for: an upper forecast quantile over the next few steps.

A scaler asks every sync period "how much load may arrive before a pod I start now is ready?". The
outlook keeps one forecaster per series: it is fitted once enough history exists, then fed each new
observation through ``update`` (the forecaster re-estimates on its own cadence; between refits it only
runs its fitted model forward, which costs well under a millisecond). The answer is the larger of

* the model's own upper ``level`` bound (capped, see below), and
* a bound from the **realised** one-step errors: the mean plus the median and ``z`` times the spread
  (standard deviation) of the recent errors, actual - forecast (``error_window`` steps), so a model that
  has been surprised lately is not trusted to its own, narrower interval.

The errors are differences, not actual/forecast ratios: a ratio explodes where the forecast is near
zero, as the load of Crane input10 (not a default benchmark trace) does between its bursts. Over the
error window (half an hour) the level changes little, so at normal loads a difference bounds what a
ratio did.

The model's own interval is not taken on trust either: once there are realised errors it is capped at
``TRUST_FACTOR`` (4) times the width they support (``z`` standard deviations, at least ``WIDTH_FLOOR``
of the forecast). On the same trace statsforecast's AutoETS chose multiplicative errors,
ETS(M,N,N), whose 95 % bound at a load of 1.5 req/s was 230 req/s (150 times the mean; up to a million
during bursts), and the policy held 100-200 pods for a load that needed 2-10 (38,942 replica-hours where
the HPA at 40 % used 5,229). A model that knows more than the last half hour (a daily peak ahead) still
widens the bound up to that cap; what it misses beyond it, the scaler's reactive safeguard answers.

Steps are the forecaster's steps (one minute for the traces); the caller keeps time.

The rule itself is :func:`trusted_upper`; the engine's predict stage publishes the scaler's bound with it
too (over its own forecaster and errors), so what ``opsmind bench autoscale`` scores is what the engine's
scaler acts on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from statistics import NormalDist

import numpy as np

from opsmind.predict.base import Forecast, Forecaster

# How many times wider than its realised one-step errors support the model's own interval may be.
TRUST_FACTOR = 4.0
# The narrowest width (a share of the forecast) the realised errors are taken to support: half an hour of
# almost constant load does not make any burst impossible.
WIDTH_FLOOR = 0.05
# Fewer realised errors than this say nothing about the forecast's misses; the model's interval is taken.
MIN_ERRORS = 5
# How many recent one-step errors are kept: half an hour of one-minute steps.
ERROR_WINDOW = 30


def trusted_upper(mean: np.ndarray, model_hi: np.ndarray, errors: Sequence[float], z: float) -> np.ndarray:
    """The upper bound of each step given the forecast ``mean``, the model's own bound ``model_hi`` and the
    recent realised one-step errors (actual - forecast): the model's bound capped at ``TRUST_FACTOR`` times
    the width the errors support (``z`` standard deviations, at least ``WIDTH_FLOOR`` of the mean), and
    raised to ``mean + median + z * std`` of the errors where that is higher (see the module docstring).
    With fewer than ``MIN_ERRORS`` errors the model's bound is returned as it is."""
    mean = np.asarray(mean, dtype=float)
    bound = np.asarray(model_hi, dtype=float)
    if len(errors) < MIN_ERRORS:
        return bound
    e = np.asarray(errors, dtype=float)
    width = z * float(np.std(e))
    support = TRUST_FACTOR * np.maximum(width, WIDTH_FLOOR * np.abs(mean))
    out: np.ndarray = np.maximum(np.minimum(bound, mean + support), mean + float(np.median(e)) + width)
    return out


def describe_bound(level: int, errors: int) -> str:
    """How :func:`trusted_upper` made its bound at ``level`` % from ``errors`` realised errors, for a reason
    chain."""
    if errors >= MIN_ERRORS:
        return f"{level} % bound checked against {errors} realised one-step errors"
    return f"the model's {level} % bound ({errors} realised errors, {MIN_ERRORS} to check it)"


class LoadOutlook:
    def __init__(
        self,
        make_forecaster: Callable[[], Forecaster],
        *,
        level: int = 95,
        error_window: int = ERROR_WINDOW,
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
        self._errors: deque[float] = deque(maxlen=error_window)  # actual - forecast, one step ahead
        self.model = "none yet"

    def observe(self, value: float) -> None:
        """One new observation (NaN and inf are skipped)."""
        if not np.isfinite(value):
            return
        value = max(float(value), 0.0)
        if self._latest is not None:
            expected = float(self._latest.mean[0])
            if np.isfinite(expected):
                self._errors.append(value - expected)
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
        bound = trusted_upper(mean, model_hi, self._errors, self._z)
        finite = bound[np.isfinite(bound)]
        return float(finite.max()) if finite.size else 0.0
