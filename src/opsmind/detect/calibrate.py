"""Raw detector score -> probability of an anomaly, online and per series.

The choice: a Gaussian tail on ``u = log1p(score)`` against the series' own recent normal scores. Per row
the calibrator keeps an EW mean ``m`` and variance ``v`` of ``u`` over the scores it is fed (see
below), starting from a per-detector prior ``(prior_mean, prior_sd)`` worth ``prior_weight``
points (the moments of ``u`` on synthetic Gaussian noise, measured once - see :data:`PRIORS`), so there is
no calibration cold start; the step is ``max(alpha, 1 / (prior_weight + n))``. Then

    z = (u - m) / max(sqrt(v), min_sd)        tail = erfc(z / sqrt 2) / 2        p = 1 - tail

The ensemble feeds every finite score, anomalous or not, but each update is clipped at ``CLIP_SD``
standard deviations: a rare anomaly barely moves the moments, a series that is jumpy by nature (real
metrics with flat stretches and sudden steps) learns its own heavy tail instead of alarming on every step.

``p`` is monotone in the score for a fixed state, in [0, 1], NaN for a NaN score and exactly 1 for an
infinite one. The log keeps the heavy right tail of raw scores from dominating ``v``; adapting per series
means a detector whose scores are routinely high on one series (CUSUM on a seasonal series, say) is
discounted there, while a score far above the series' own history still maps close to 1. ``tail`` is
returned as well, because ``1 - p`` loses its precision exactly where alarms live.
"""

from __future__ import annotations

import math

import numpy as np

from opsmind.detect.base import F64, I64, B, grow
from opsmind.detect.robust import erfc

# (mean, sd) of log1p(score) on i.i.d. Gaussian noise after each detector's cold start.
PRIORS: dict[str, tuple[float, float]] = {
    "seasonal": (0.55, 0.40),
    "ewma": (0.55, 0.40),
    "cusum": (0.10, 0.20),
    "spectral_residual": (0.30, 0.35),
}


CLIP_SD = 3.0


class Calibrator:
    """Per-row EW moments of ``log1p(score)`` and the Gaussian tail of a new score against them."""

    NBYTES = 3 * 8

    def __init__(
        self,
        prior_mean: float,
        prior_sd: float,
        alpha: float = 0.005,
        prior_weight: float = 50.0,
        min_sd: float = 0.1,
    ) -> None:
        self.prior_mean, self.prior_sd = prior_mean, prior_sd
        self.alpha, self.prior_weight, self.min_sd = alpha, prior_weight, min_sd
        self.m = np.zeros(0)
        self.v = np.zeros(0)
        self.n = np.zeros(0)

    @classmethod
    def for_detector(cls, name: str) -> Calibrator:
        mean, sd = PRIORS.get(name, (0.5, 0.5))
        return cls(mean, sd)

    def ensure_rows(self, n_rows: int) -> None:
        self.m = grow(self.m, n_rows, self.prior_mean)
        self.v = grow(self.v, n_rows, self.prior_sd**2)
        self.n = grow(self.n, n_rows, 0.0)

    def tail(self, rows: I64, scores: F64) -> F64:
        """Upper-tail probability of each score (1 = ordinary, -> 0 = extreme); NaN for NaN, 0 for inf."""
        self.ensure_rows(int(rows.max()) + 1 if len(rows) else 0)
        u = np.log1p(np.maximum(scores, 0.0))
        sd = np.maximum(np.sqrt(self.v[rows]), self.min_sd)
        z = (u - self.m[rows]) / sd
        with np.errstate(invalid="ignore", over="ignore"):
            q = 0.5 * erfc(np.where(np.isfinite(z), z, 0.0) / math.sqrt(2.0))
        q[np.isposinf(z)] = 0.0
        q[np.isnan(scores)] = np.nan
        return np.asarray(q)

    def probability(self, rows: I64, scores: F64) -> F64:
        return 1.0 - self.tail(rows, scores)

    def learn(self, rows: I64, scores: F64, learn: B) -> None:
        self.ensure_rows(int(rows.max()) + 1 if len(rows) else 0)
        ok = learn & np.isfinite(scores)
        r = rows[ok]
        u = np.log1p(np.maximum(scores[ok], 0.0))
        n = self.n[r]
        a = np.maximum(self.alpha, 1.0 / (self.prior_weight + n))
        m = self.m[r]
        # Bounded influence: one extreme score moves the moments by at most CLIP_SD standard deviations'
        # worth, while a series that keeps producing high scores widens its own tail.
        lim = CLIP_SD * np.maximum(np.sqrt(self.v[r]), self.min_sd)
        d = np.clip(u - m, -lim, lim)
        self.m[r] = m + a * d
        self.v[r] = (1.0 - a) * (self.v[r] + a * d * d)
        self.n[r] = n + 1.0
