"""Robust rolling z-score: distance from the rolling median in units of the rolling MAD.

The first real detector of the spine. For each series it keeps the last ``window`` normal points in a
hot window, scores a new point as ``|x - median| / (1.4826 * MAD)`` and, because a detector must protect
itself, does not learn points it scored as anomalous - unless ``relearn_after`` of them arrive in a row,
which means the level shifted for good and the new level becomes normal after a bounded time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from opsmind.store.hot_window import HotWindow

# 1.4826 * MAD estimates the standard deviation of normally distributed data.
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True, slots=True)
class Score:
    score: float
    expected: float
    probability: float


def calibrate(score: float, threshold: float) -> float:
    """Map a raw score to a probability in [0, 1]: 0.5 at the threshold, approaching 1 far above it."""
    if not math.isfinite(score):
        return 1.0
    s2 = score * score
    return s2 / (s2 + threshold * threshold)


class RollingMadDetector:
    """Median/MAD z-score over a bounded window per series."""

    name = "rolling_mad"

    def __init__(
        self,
        window: int = 120,
        min_points: int = 30,
        threshold: float = 6.0,
        relearn_after: int | None = None,
    ) -> None:
        if min_points > window:
            raise ValueError("min_points must not exceed window")
        self.window = window
        self.min_points = min_points
        self.threshold = threshold
        # A shift that lasts a quarter of the window is accepted as the new normal.
        self.relearn_after = relearn_after if relearn_after is not None else max(3, window // 4)
        self.history = HotWindow(window)
        self._streak: dict[str, int] = {}

    def score_one(self, key: str, value: float) -> Score | None:
        """Score ``value`` against the series' history; ``None`` during cold start."""
        if self.history.count(key) < self.min_points:
            return None
        _, hist = self.history.window(key)
        hist = hist[np.isfinite(hist)]
        if len(hist) < self.min_points:
            return None
        med = float(np.median(hist))
        mad = float(np.median(np.abs(hist - med))) * MAD_TO_SIGMA
        # A constant history has MAD 0; use a floor relative to the level so any real change still scores
        # high while float noise does not.
        scale = max(mad, 1e-3 * abs(med), 1e-9)
        if not math.isfinite(value):
            return Score(math.inf, med, 1.0)
        z = abs(value - med) / scale
        return Score(z, med, calibrate(z, self.threshold))

    def score_many(
        self, keys: list[str], values: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Score one new value for each of many distinct series at once.

        Returns ``(rows, scores, expected)``; a score is NaN during a series' cold start. The arithmetic is
        the same as :meth:`score_one`, over an ``[n, window]`` matrix instead of one window at a time."""
        rows = self.history.rows_of(keys)
        scores = np.full(len(keys), np.nan)
        expected = np.full(len(keys), np.nan)
        ready = self.history.counts(rows) >= self.min_points
        if not ready.any():
            return rows, scores, expected
        m = self.history.value_matrix(rows[ready]).astype(np.float64)
        med = np.nanmedian(m, axis=1)
        mad = np.nanmedian(np.abs(m - med[:, None]), axis=1) * MAD_TO_SIGMA
        scale = np.maximum(np.maximum(mad, 1e-3 * np.abs(med)), 1e-9)
        v = values[ready]
        with np.errstate(invalid="ignore"):
            z = np.abs(v - med) / scale
        z[~np.isfinite(v)] = np.inf
        scores[ready] = z
        expected[ready] = med
        return rows, scores, expected

    def learn_many(
        self,
        keys: list[str],
        rows: npt.NDArray[np.int64],
        ts: npt.NDArray[np.float64],
        values: npt.NDArray[np.float64],
        anomalous: npt.NDArray[np.bool_],
    ) -> None:
        """:meth:`learn_one` for many distinct series: normal points are learned in one vectorised append;
        the few anomalous ones go through the streak rule one by one."""
        learn = ~anomalous & np.isfinite(values)
        if self._streak:
            for i in np.flatnonzero(learn):
                self._streak.pop(keys[i], None)
        for i in np.flatnonzero(anomalous):
            self.learn_one(keys[i], float(ts[i]), float(values[i]), True)
        self.history.append_many(rows[learn], ts[learn], values[learn])

    def learn_one(self, key: str, ts: float, value: float, anomalous: bool) -> None:
        """Add the point to the history unless it is anomalous and the anomaly is not (yet) lasting."""
        if not math.isfinite(value):
            return
        if anomalous:
            streak = self._streak.get(key, 0) + 1
            self._streak[key] = streak
            if streak < self.relearn_after:
                return
        else:
            self._streak.pop(key, None)
        self.history.append(key, ts, value)

    def is_anomalous(self, score: Score | None) -> bool:
        """The alarm rule, kept apart from scoring: a score at or above the threshold."""
        return score is not None and score.score >= self.threshold
