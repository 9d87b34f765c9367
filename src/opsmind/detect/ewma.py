"""EWMA residual detector: a fast exponentially weighted level with an EW variance of its residuals.

Per row: ``level`` (EW mean, ``alpha``) and ``var`` (EW mean of squared one-step residuals,
``var_alpha``); both use the running mean (``1/n``) while ``1/n`` is larger, so the first points are not
dominated by the first value. The score of ``x`` is ``|x - level| / scale`` with
``scale = max(sqrt(var), floor)`` and the data-relative floor of :class:`~opsmind.detect.robust.Resolution`.

No trend term: a Holt trend overshoots after every spike and level shift it has to learn, which costs more
false alarms on operational metrics than it saves; drifts are left to the slower detectors' relearning.

Edge cases: NaN until ``min_points`` points were learned; a NaN value scores NaN, ``+-inf`` scores
``inf``; neither is learned. O(1) per point, 5 float64 + the resolution tracker per row.
"""

from __future__ import annotations

import numpy as np

from opsmind.detect.base import F64, I64, B, grow
from opsmind.detect.jit import kernel
from opsmind.detect.robust import Resolution, safe_ratio


class EwmaDetector:
    name = "ewma"

    def __init__(
        self,
        alpha: float = 0.15,
        var_alpha: float = 0.03,
        min_points: int = 10,
        res: Resolution | None = None,
    ) -> None:
        self.alpha = alpha
        self.var_alpha = var_alpha
        self.min_points = min_points
        # A resolution tracker shared with other detectors is learned by its owner (the ensemble).
        self.owns_res = res is None
        self.res = res if res is not None else Resolution()
        self.level = np.zeros(0)
        self.var = np.zeros(0)

    def ensure_rows(self, n_rows: int) -> None:
        self.res.ensure_rows(n_rows)
        self.level = grow(self.level, n_rows, np.nan)
        self.var = grow(self.var, n_rows, 0.0)

    @property
    def nbytes_per_series(self) -> int:
        return 2 * 8 + (Resolution.NBYTES if self.owns_res else 0)

    def scale(self, rows: I64) -> F64:
        lv = self.level[rows]
        return np.maximum(np.sqrt(self.var[rows]), self.res.floor(rows, np.nan_to_num(lv)))

    def expected(self, rows: I64) -> F64:
        return self.level[rows]

    def score_many(self, rows: I64, ts: F64, values: F64) -> F64:
        self.ensure_rows(int(rows.max()) + 1 if len(rows) else 0)
        z = safe_ratio(np.abs(values - self.level[rows]), self.scale(rows))
        z[np.isinf(values)] = np.inf
        z[self.res.n[rows] < self.min_points] = np.nan
        z[np.isnan(values)] = np.nan
        return z

    def learn_many(self, rows: I64, ts: F64, values: F64, learn: B) -> None:
        self.ensure_rows(int(rows.max()) + 1 if len(rows) else 0)
        ok = learn & np.isfinite(values)
        r = rows[ok]
        _learn_ewma(r, values[ok], self.res.n[r], self.level, self.var, self.alpha, self.var_alpha)
        if self.owns_res:
            self.res.learn(rows, values, learn)


@kernel
def _learn_ewma(rows: I64, x: F64, n: F64, level: F64, var: F64, alpha: float, var_alpha: float) -> None:
    """Level and residual variance after the learned points ``x`` (``n``: points learned before each)."""
    for i in range(len(rows)):
        r = rows[i]
        lv = x[i] if level[r] != level[r] else level[r]
        resid = x[i] - lv
        inv = 1.0 / (n[i] + 1.0)
        level[r] = lv + max(alpha, inv) * resid
        var[r] += max(var_alpha, inv) * (resid * resid - var[r])
