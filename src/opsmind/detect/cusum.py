"""Two-sided CUSUM on standardised residuals against a slow EW mean/sd: detects level shifts.

Per row: a slow reference ``mu``/``var`` (EW, ``alpha``; running mean while ``1/n`` is larger), learned
only from points the caller marks as normal; the standardised residual is clipped to ``+-clip`` so one
spike cannot trip the statistic on its own (``clip - k < h``: a shift needs at least two points), then

    S+ = max(0, S+ + z - k)        S- = max(0, S- - z - k)        score = max(S+, S-) / h

so a score of 1 is the classic CUSUM alarm. The accumulators advance on every finite point (learned or
not - they measure persistence, not the model), and when one reaches ``h`` both reset to 0 and ``mu``
jumps to a fast EW mean of the recent values: after a lasting shift the detector re-centres on the new
level instead of alarming forever.

Edge cases: NaN until ``min_points`` learned points; a NaN value scores NaN, ``+-inf`` scores ``inf``;
neither advances anything. The scale is floored by :class:`~opsmind.detect.robust.Resolution`.
"""

from __future__ import annotations

import numpy as np

from opsmind.detect.base import F64, I64, B, Rows, as_run, grow, learned
from opsmind.detect.jit import kernel
from opsmind.detect.robust import Resolution, safe_ratio


class CusumDetector:
    name = "cusum"

    def __init__(
        self,
        alpha: float = 0.01,
        k: float = 0.5,
        h: float = 5.0,
        clip: float = 3.0,
        fast_alpha: float = 0.3,
        min_points: int = 20,
        res: Resolution | None = None,
    ) -> None:
        if clip - k >= h:
            raise ValueError("clip - k must stay below h so one point cannot alarm")
        self.alpha, self.k, self.h, self.clip = alpha, k, h, clip
        self.fast_alpha = fast_alpha
        self.min_points = min_points
        # A resolution tracker shared with other detectors is learned by its owner (the ensemble).
        self.owns_res = res is None
        self.res = res if res is not None else Resolution()
        self.mu = np.zeros(0)
        self.var = np.zeros(0)
        self.sp = np.zeros(0)
        self.sn = np.zeros(0)
        self.fast = np.zeros(0)
        self._cache: tuple[I64, F64, F64, F64] | None = None

    def ensure_rows(self, n_rows: int) -> None:
        self.res.ensure_rows(n_rows)
        self.mu = grow(self.mu, n_rows, np.nan)
        self.var = grow(self.var, n_rows, 0.0)
        self.sp = grow(self.sp, n_rows, 0.0)
        self.sn = grow(self.sn, n_rows, 0.0)
        self.fast = grow(self.fast, n_rows, np.nan)

    @property
    def nbytes_per_series(self) -> int:
        return 5 * 8 + (Resolution.NBYTES if self.owns_res else 0)

    def _step(self, rows: Rows, values: F64) -> tuple[F64, F64]:
        """The accumulators after ``values`` (no state change)."""
        mu = self.mu[rows]
        scale = np.maximum(np.sqrt(self.var[rows]), self.res.floor(rows, np.nan_to_num(mu)))
        d = values - mu
        z = safe_ratio(np.abs(d), scale)
        z = np.copysign(np.minimum(np.nan_to_num(z, nan=0.0, posinf=self.clip), self.clip), d)
        sp = np.maximum(0.0, self.sp[rows] + z - self.k)
        sn = np.maximum(0.0, self.sn[rows] - z - self.k)
        return sp, sn

    def _step_kept(self, rows: I64, values: F64) -> tuple[F64, F64]:
        """:meth:`_step`, kept for the learn_many that follows with the very same arrays (the ensemble
        scores, then learns the same points)."""
        with np.errstate(invalid="ignore"):
            sp, sn = self._step(as_run(rows), values)
        self._cache = (rows, values, sp, sn)
        return sp, sn

    def score_many(self, rows: I64, ts: F64, values: F64) -> F64:
        self.ensure_rows(int(rows.max()) + 1 if len(rows) else 0)
        sp, sn = self._step_kept(rows, values)
        s = np.maximum(sp, sn) / self.h
        s[np.isinf(values)] = np.inf
        s[self.res.n[rows] < self.min_points] = np.nan
        s[np.isnan(values)] = np.nan
        return s

    def learn_many(self, rows: I64, ts: F64, values: F64, learn: B) -> None:
        self.ensure_rows(int(rows.max()) + 1 if len(rows) else 0)
        fin = np.isfinite(values)
        rf, r = learned(rows, fin)
        x = values[fin]
        cached = self._cache
        self._cache = None  # the state changes below
        if cached is not None and cached[0] is rows and cached[1] is values:
            sp, sn = cached[2][fin], cached[3][fin]
        else:
            with np.errstate(invalid="ignore"):
                sp, sn = self._step(r, x)
        _learn_cusum(
            rf, x, learn[fin], sp, sn, self.res.n[rf],
            self.mu, self.var, self.sp, self.sn, self.fast,
            self.alpha, self.h, self.fast_alpha, self.min_points,
        )  # fmt: skip
        if self.owns_res:
            self.res.learn(rows, values, learn)


@kernel
def _learn_cusum(
    rows: I64, x: F64, learn: B, sp_new: F64, sn_new: F64, n: F64,
    mu: F64, var: F64, sp: F64, sn: F64, fast: F64,
    alpha: float, h: float, fast_alpha: float, min_points: int,
) -> None:  # fmt: skip
    """The update after the finite points ``x`` of ``rows`` (``sp_new``/``sn_new``: the accumulators they
    lead to, ``n``: points learned before each): the fast mean always, the accumulators (reset on an
    alarm or in the cold start), the reference from the points with ``learn``, then the alarmed rows'
    reference re-centred on the fast mean."""
    for i in range(len(rows)):
        r = rows[i]
        fast[r] = x[i] if fast[r] != fast[r] else fast[r] + fast_alpha * (x[i] - fast[r])
        warm = n[i] >= min_points
        alarm = warm and max(sp_new[i], sn_new[i]) >= h
        keep = warm and not alarm
        sp[r] = sp_new[i] if keep else 0.0
        sn[r] = sn_new[i] if keep else 0.0
        if learn[i]:
            m = x[i] if mu[r] != mu[r] else mu[r]
            d = x[i] - m
            a = max(alpha, 1.0 / (n[i] + 1.0))
            var[r] += a * (d * d - var[r])
            mu[r] = m + a * d
        if alarm:
            mu[r] = fast[r]
