"""Shared pieces of the online detectors: per-row data-resolution tracking and a vectorised ``erfc``.

:class:`Resolution` keeps, per row, what a detector needs to floor its scale relative to the data
itself instead of a fixed epsilon: the number of learned points, the last learned value, an exponentially
weighted mean absolute difference of consecutive learned values and the smallest non-zero absolute
difference seen (the data's quantisation step). :meth:`Resolution.floor` turns them into a scale floor

    max(DIFF_FRACTION * ew_abs_diff, LEVEL_FRACTION * |level|, quantum)

which is 0 only for a series that has been exactly constant at 0 so far; a detector then scores 0 for an
equal value and ``inf`` for any other (a series that never moved, moving, is anomalous).
"""

from __future__ import annotations

import numpy as np

from opsmind.detect.base import F64, I64, B, Rows, grow
from opsmind.detect.jit import kernel

DIFF_FRACTION = 0.1
LEVEL_FRACTION = 1e-4
DIFF_ALPHA = 0.02


class Resolution:
    """Per-row learned-point count, last value, EW mean |diff| and smallest non-zero |diff|."""

    def __init__(self) -> None:
        self.n = np.zeros(0, dtype=np.float64)
        self.last = np.zeros(0, dtype=np.float64)
        self.absdiff = np.zeros(0, dtype=np.float64)
        self.quantum = np.zeros(0, dtype=np.float64)

    NBYTES = 4 * 8

    def ensure_rows(self, n_rows: int) -> None:
        self.n = grow(self.n, n_rows, 0.0)
        self.last = grow(self.last, n_rows, np.nan)
        self.absdiff = grow(self.absdiff, n_rows, 0.0)
        self.quantum = grow(self.quantum, n_rows, np.inf)

    def floor(self, rows: Rows, level: F64) -> F64:
        q = self.quantum[rows]
        q = np.where(np.isfinite(q), q, 0.0)
        return np.maximum(np.maximum(DIFF_FRACTION * self.absdiff[rows], LEVEL_FRACTION * np.abs(level)), q)

    def learn(self, rows: I64, values: F64, learn: B) -> None:
        """Account the learned finite points (``rows`` distinct)."""
        ok = learn & np.isfinite(values)
        _learn_resolution(rows[ok], values[ok], self.n, self.last, self.absdiff, self.quantum)


@kernel
def _learn_resolution(rows: I64, x: F64, n: F64, last: F64, absdiff: F64, quantum: F64) -> None:
    for i in range(len(rows)):
        r = rows[i]
        d = abs(x[i] - last[r])
        if np.isfinite(d):  # not the row's first point
            # Running mean over the first points, then exponentially weighted.
            a = max(DIFF_ALPHA, 1.0 / max(n[r], 1.0))
            absdiff[r] += a * (d - absdiff[r])
            if d > 0.0:
                quantum[r] = min(quantum[r], d)
        last[r] = x[i]
        n[r] += 1.0


def safe_ratio(num: F64, den: F64) -> F64:
    """``num / den`` for ``num >= 0``, ``den >= 0``: 0 where both are 0, ``inf`` where only ``den`` is."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    out[(num == 0.0) & (den == 0.0)] = 0.0
    return out


def erfc(x: F64) -> F64:
    """Complementary error function, fractional error < 1.2e-7 everywhere (Chebyshev fit, Numerical
    Recipes' ``erfcc`` form), so far tails keep their relative precision."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = np.full_like(z, 0.17087277)
    for c in (-0.82215223, 1.48851587, -1.13520398, 0.27886807, -0.18628806, 0.09678418, 0.37409196):
        poly = c + t * poly
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * poly)
    ans = t * np.exp(poly)
    return np.asarray(np.where(x >= 0.0, ans, 2.0 - ans))
