"""The load a scaler must be ready for: an upper forecast quantile over the next few minutes.

A scaler asks every sync period "how much load may arrive before a pod I start now is ready?". Fitting
a seasonal model that often is wasteful, so the outlook refits its forecaster every ``refit_every``
observations on a trailing window and forecasts the whole block until the next refit at once. Between
refits it stays current in two ways, both from observations alone:

* **level correction**: the recent ratio of observed to forecast load (a robust median over the last
  ``level_window`` steps) rescales the block, so a day that runs 20 % hotter than the model expects is
  followed within minutes, not at the next refit;
* **interval from realised error**: the spread of the recent relative errors widens the upper bound
  when the model has been surprised lately, and never narrows it below the model's own interval.

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
        refit_every: int = 60,
        max_history: int = 7 * 1440,
        level: int = 80,
        level_window: int = 15,
        min_history: int = 60,
    ) -> None:
        if refit_every < 1 or max_history < 2 or level_window < 1:
            raise ValueError("refit_every, max_history and level_window must be positive")
        if not 0 < level < 100:
            raise ValueError(f"level must be a percentage in (0, 100), got {level}")
        self._make = make_forecaster
        self.refit_every = refit_every
        self.max_history = max_history
        self.level = level
        self.level_window = level_window
        self.min_history = min_history
        self._history: deque[float] = deque(maxlen=max_history)
        self._block: Forecast | None = None
        self._block_pos = 0  # observations since the block was forecast
        self._ratios: deque[float] = deque(maxlen=level_window)
        self.model = "none yet"
        self.refits = 0

    def observe(self, value: float) -> None:
        """One new observation (NaN is skipped). Refits when due."""
        if not np.isfinite(value):
            return
        value = max(float(value), 0.0)
        if self._block is not None and self._block_pos < len(self._block.mean):
            expected = float(self._block.mean[self._block_pos])
            if expected > 0:
                self._ratios.append(value / expected)
        self._history.append(value)
        self._block_pos += 1
        due = self._block is None or self._block_pos >= self.refit_every
        if due and len(self._history) >= self.min_history:
            self._refit()

    def _refit(self) -> None:
        forecaster = self._make()
        forecaster.fit(np.asarray(self._history, dtype=float))
        # The block covers the steps until the next refit plus the longest look-ahead asked of it.
        self._block = forecaster.predict(self.refit_every + 120, levels=(self.level,))
        self._block_pos = 0
        self.model = self._block.model
        self.refits += 1

    def upper(self, ahead_from: int, ahead_to: int) -> float:
        """The largest upper-``level`` bound over steps ``ahead_from..ahead_to`` after the last
        observation (1 = the next step), level-corrected. Before the first fit: the recent maximum."""
        if ahead_from < 1 or ahead_to < ahead_from:
            raise ValueError(f"bad look-ahead range {ahead_from}..{ahead_to}")
        recent = list(self._history)[-self.level_window :]
        if self._block is None:
            return max(recent) if recent else 0.0
        lo = self._block_pos + ahead_from - 1
        hi = min(self._block_pos + ahead_to, len(self._block.mean))
        if lo >= hi:
            return max(recent) if recent else 0.0
        mean = self._block.mean[lo:hi]
        model_hi = self._block.hi.get(self.level, mean)[lo:hi]
        ratio = self._ratio()
        return float(np.max(np.maximum(model_hi * ratio, self._realised_upper(mean, ratio))))

    def _ratio(self) -> float:
        return float(np.median(self._ratios)) if len(self._ratios) >= 3 else 1.0

    def _realised_upper(self, mean: np.ndarray, ratio: float) -> np.ndarray:
        """The realised relative error over the recent window, as a one-sided upper quantile."""
        if len(self._ratios) >= 5:
            z = NormalDist().inv_cdf(self.level / 100.0)  # one-sided: 80 -> 0.84, 90 -> 1.28
            spread = float(np.std(np.asarray(self._ratios) / max(ratio, 1e-9)))
            return np.asarray(mean * ratio * (1.0 + z * spread))
        return np.asarray(mean * ratio)

    def current(self, h: int) -> Forecast | None:
        """The next ``h`` steps after the last observation as a forecast, level-corrected the way
        :meth:`upper` is (the upper bound of ``level`` also widened by the realised error); ``None``
        before the first fit or past the end of the block."""
        if self._block is None or h < 1:
            return None
        lo = self._block_pos
        hi = min(lo + h, len(self._block.mean))
        if lo >= hi:
            return None
        ratio = self._ratio()
        mean = np.asarray(self._block.mean[lo:hi], dtype=float) * ratio
        lows = {k: np.asarray(v[lo:hi], dtype=float) * ratio for k, v in self._block.lo.items()}
        highs = {k: np.asarray(v[lo:hi], dtype=float) * ratio for k, v in self._block.hi.items()}
        if self.level in highs:
            raw_mean = np.asarray(self._block.mean[lo:hi], dtype=float)
            highs[self.level] = np.maximum(highs[self.level], self._realised_upper(raw_mean, ratio))
        note = f" (level-corrected x{ratio:.3g})" if abs(ratio - 1.0) > 1e-9 else ""
        return Forecast(mean=mean, lo=lows, hi=highs, model=f"{self.model}{note}")
