"""Robust seasonal baseline: per-phase profile plus a slow level, period chosen online per series.

Candidates are fixed wall-clock periods - none, an hour, a day, a week - each cut into phase bins (12, 48
and 84 bins: 5 min, 30 min and 2 h), so the phase of a point is ``(ts mod period) / period`` and no early
buffer is needed. Every candidate ``c`` keeps, per row,

* ``level[c]``: a slow EW level of the de-seasonalised value (``level_alpha``),
* ``prof[c, bin]`` / ``dev[c, bin]``: the phase profile and phase scale (EW mean and EW mean absolute
  residual of the bin; the bin's own point count gives a running mean over its first points, then the
  rate is ``bin_alpha`` per *period*, i.e. divided by the points per bin visit from the EW sampling
  interval - so consecutive points of one bin cannot turn the profile into a fast local tracker),
* ``gdev[c]``: an EW mean absolute residual over all bins (fallback and lower bound of the phase scale),
* ``err[c]``: a slower EW mean absolute one-step residual, the model-selection criterion. It starts only
  once the series is one full period old (then from the "none" candidate's error), so a candidate is
  judged on genuine out-of-sample seasonal predictions.

All candidates learn every normal point; the score uses the candidate with the smallest ``err`` after a
``SEASON_PENALTY`` handicap for the seasonal ones (a period must cut the one-step error by 15 %), so a
series with a real daily season switches to it after a day or two and a series without one (or with
timestamps that are not wall-clock) stays with "none". Updates are robust: residuals are clipped at
``CLIP`` scales before they move a level, profile or deviation (a Huber-type EW M-estimate, the O(1)
stand-in for a windowed median/MAD). When ``RECENTRE_AFTER`` consecutive *learned* points lie beyond the
clip (the caller accepted a lasting shift) the levels re-centre at ``RECENTRE_ALPHA`` unclipped and the
profiles are left alone, so a level shift is absorbed in a few points instead of a day of bin visits.

Score = ``|x - level[c] - prof[c, bin]| / scale`` with ``scale = 1.25 * max(dev[c, bin], 0.5 * gdev[c])``
(1.25 turns a mean absolute deviation into a Gaussian sigma) floored by
:class:`~opsmind.detect.robust.Resolution`. NaN until ``min_points`` learned points; NaN value -> NaN,
``+-inf`` -> ``inf``; neither is learned. State: 144 bins x 3 float32 + 4 candidates x 3 float64 + 4
float64 + the resolution tracker, about 2 KB per row.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from opsmind.detect.base import F64, I64, B, Rows, as_run, grow, learned
from opsmind.detect.robust import Resolution, safe_ratio

PERIODS_S = (3600.0, 86400.0, 604800.0)
BINS = (12, 48, 84)
OFFSETS = (0, 12, 60)
TOTAL_BINS = 144
N_CAND = len(PERIODS_S) + 1
SEASON_PENALTY = 1.15
CLIP = 4.0
MAD_TO_SIGMA = 1.25
RECENTRE_AFTER = 2
RECENTRE_ALPHA = 0.3


Bins = I64 | int  # phase-bin columns per row, or one column for all rows (every timestamp equal)
Cells = tuple[Bins, Rows]


def _cells(idx: Rows, rows: I64, b: Bins) -> Cells:
    """Index of each row's bin cell in the (bin, row) tables: a contiguous view when the rows are one
    run and share a bin, else paired fancy indices."""
    if isinstance(idx, slice) and isinstance(b, int):
        return b, idx
    return (np.full(len(rows), b, dtype=np.int64) if isinstance(b, int) else b), rows


def _grow_cols(a: npt.NDArray[np.float32], n_rows: int) -> npt.NDArray[np.float32]:
    """A (bin, row) table with at least ``n_rows`` row columns, new ones 0 (doubling, amortised)."""
    if a.shape[1] >= n_rows:
        return a
    out = np.zeros((a.shape[0], max(n_rows, 2 * a.shape[1], 64)), dtype=a.dtype)
    out[:, : a.shape[1]] = a
    return out


class SeasonalDetector:
    name = "seasonal"

    def __init__(
        self,
        level_alpha: float = 0.02,
        bin_alpha: float = 0.2,
        err_alpha: float = 0.01,
        min_points: int = 30,
        res: Resolution | None = None,
    ) -> None:
        self.level_alpha, self.bin_alpha, self.err_alpha = level_alpha, bin_alpha, err_alpha
        self.min_points = min_points
        # A resolution tracker shared with other detectors is learned by its owner (the ensemble).
        self.owns_res = res is None
        self.res = res if res is not None else Resolution()
        self.level = np.zeros((0, N_CAND))
        self.gdev = np.zeros((0, N_CAND))
        self.err = np.zeros((0, N_CAND))
        # Bin tables are (bin, row): one step of a fleet that shares a timestamp touches one contiguous
        # stretch of each, instead of one cache line per row.
        self.prof = np.zeros((TOTAL_BINS, 0), dtype=np.float32)
        self.dev = np.zeros((TOTAL_BINS, 0), dtype=np.float32)
        self.cnt = np.zeros((TOTAL_BINS, 0), dtype=np.float32)
        self.dt = np.zeros(0)  # EW sampling interval (s)
        self.t0 = np.zeros(0)  # first learned timestamp
        self.last_ts = np.zeros(0)
        self.run = np.zeros(0)  # consecutive learned points beyond CLIP scales
        self.last_expected = np.zeros(0)  # scratch: expected values of the last score_many call
        self._cache: tuple[I64, F64, list[Bins], F64, F64, I64] | None = None

    def ensure_rows(self, n_rows: int) -> None:
        self.res.ensure_rows(n_rows)
        self.level = grow(self.level, n_rows, np.nan)
        self.gdev = grow(self.gdev, n_rows, 0.0)
        self.err = grow(self.err, n_rows, np.nan)
        self.prof = _grow_cols(self.prof, n_rows)
        self.dev = _grow_cols(self.dev, n_rows)
        self.cnt = _grow_cols(self.cnt, n_rows)
        self.dt = grow(self.dt, n_rows, np.nan)
        self.t0 = grow(self.t0, n_rows, np.nan)
        self.last_ts = grow(self.last_ts, n_rows, np.nan)
        self.run = grow(self.run, n_rows, 0.0)

    @property
    def nbytes_per_series(self) -> int:
        return TOTAL_BINS * 3 * 4 + 3 * N_CAND * 8 + 4 * 8 + (Resolution.NBYTES if self.owns_res else 0)

    @staticmethod
    def _bins(ts: F64) -> list[Bins]:
        """Bin column of each candidate; one int per candidate when every timestamp is the same (rows
        scraped or pushed together), which lets state be indexed by views."""
        if len(ts) and ts[0] == ts[-1] and bool((ts == ts[0]).all()):
            return [int(b[0]) for b in SeasonalDetector._bin_arrays(ts[:1])]
        return list(SeasonalDetector._bin_arrays(ts))

    @staticmethod
    def _bin_arrays(ts: F64) -> list[I64]:
        return [
            (np.floor(np.mod(ts, p) * (nb / p)).astype(np.int64) % nb) + off
            for p, nb, off in zip(PERIODS_S, BINS, OFFSETS, strict=True)
        ]

    def _predict(self, idx: Rows, rows: I64, bins: list[Bins]) -> tuple[F64, F64]:
        """Per candidate (columns): expected value and raw phase deviation of each row."""
        exp = self.level[idx].copy()
        gdev = self.gdev[idx]
        dev = gdev.copy()
        for c, b in enumerate(bins, start=1):
            cell = _cells(idx, rows, b)
            seen = self.cnt[cell] > 0.0
            exp[:, c] += self.prof[cell]
            dev[:, c] = np.where(seen, np.maximum(self.dev[cell], 0.5 * gdev[:, c]), gdev[:, c])
        return exp, dev

    def _choice(self, idx: Rows) -> I64:
        """The candidate with the smallest (penalised) error; column passes, as an argmin along a 4-wide
        axis is slow in numpy. A NaN error (not yet eligible) never wins; ties go to the first."""
        cols = self.err[idx].T
        best = np.where(np.isnan(cols[0]), np.inf, cols[0])
        choice = np.zeros(len(best), dtype=np.int64)
        for c in range(1, len(cols)):
            e = cols[c] * SEASON_PENALTY
            better = e < best  # False for NaN
            choice[better] = c
            np.minimum(best, np.where(better, e, best), out=best)
        return choice

    def _predict_at(self, rows: I64, ts: F64, reuse: bool = False) -> tuple[list[Bins], F64, F64, I64]:
        """Bins, per-candidate predictions and the chosen candidate for (rows, ts). The ensemble scores
        and then learns the same points, so score_many keeps its result and learn_many (``reuse``) takes
        it when called with the very same arrays; learn_many then drops it, as the state changes."""
        cached = self._cache
        if reuse and cached is not None and cached[0] is rows and cached[1] is ts:
            return cached[2], cached[3], cached[4], cached[5]
        idx = as_run(rows)
        bins = self._bins(ts)
        exp, dev = self._predict(idx, rows, bins)
        choice = self._choice(idx)
        self._cache = (rows, ts, bins, exp, dev, choice)
        return bins, exp, dev, choice

    def expected_and_scale(self, rows: I64, ts: F64) -> tuple[F64, F64]:
        _, exp, dev, choice = self._predict_at(rows, ts)
        ch = choice[:, None]
        e = np.take_along_axis(exp, ch, axis=1)[:, 0]
        s = MAD_TO_SIGMA * np.take_along_axis(dev, ch, axis=1)[:, 0]
        return e, np.maximum(s, self.res.floor(rows, np.nan_to_num(e)))

    def score_many(self, rows: I64, ts: F64, values: F64) -> F64:
        self.ensure_rows(int(rows.max()) + 1 if len(rows) else 0)
        e, s = self.expected_and_scale(rows, ts)
        self.last_expected = e
        z = safe_ratio(np.abs(values - e), s)
        z[np.isinf(values)] = np.inf
        z[self.res.n[rows] < self.min_points] = np.nan
        z[np.isnan(values)] = np.nan
        return z

    def learn_many(self, rows: I64, ts: F64, values: F64, learn: B) -> None:
        self.ensure_rows(int(rows.max()) + 1 if len(rows) else 0)
        ok = learn & np.isfinite(values)
        all_bins, all_exp, all_dev, all_choice = self._predict_at(rows, ts, reuse=True)
        self._cache = None  # the state changes below
        rl, r = learned(rows, ok)
        t, x = ts[ok], values[ok]
        n = self.res.n[r] + 1.0
        # Sampling interval and age, for the per-bin rate and the candidates' eligibility.
        t0 = self.t0[r]
        t0 = np.where(np.isnan(t0), t, t0)
        self.t0[r] = t0
        gap = t - self.last_ts[r]
        dt = self.dt[r]
        dt = np.where(np.isnan(dt), gap, np.where(gap > 0, dt + 0.05 * (gap - dt), dt))
        self.dt[r] = dt
        self.last_ts[r] = t
        nc = n[:, None]
        level = self.level[r]
        first = np.isnan(level[:, 0])
        if first.any():
            level[first] = x[first, None]
            self.level[r] = level
        everyone = isinstance(r, slice) or len(rl) == len(rows)
        bins = [b if isinstance(b, int) else b[ok] for b in all_bins]
        exp, dev = (all_exp, all_dev) if everyone else (all_exp[ok], all_dev[ok])
        ch = all_choice if everyone else all_choice[ok]
        exp[first] = x[first, None]  # the level was just initialised for new rows
        resid = x[:, None] - exp
        scale = np.maximum(MAD_TO_SIGMA * dev, self.res.floor(r, x)[:, None])
        lim = CLIP * np.where(scale > 0.0, scale, np.inf)
        rc = np.clip(resid, -lim, lim)
        ar = np.abs(rc)
        # A run of large learned residuals is a new regime the caller accepted: re-centre quickly.
        k = np.arange(len(rl))
        out = np.abs(resid[k, ch]) > lim[k, ch]
        run = np.where(out, self.run[r] + 1.0, 0.0)
        self.run[r] = run
        fast = (run >= RECENTRE_AFTER)[:, None]
        inv = 1.0 / nc
        step = np.maximum(self.level_alpha, inv) * rc
        if fast.any():
            step = np.where(fast, RECENTRE_ALPHA * resid, step)
        self.level[r] = level + step
        g = self.gdev[r]
        self.gdev[r] = g + np.maximum(0.05, inv) * (ar - g)
        age = (t - t0)[:, None]
        eligible = age >= np.array((0.0, *PERIODS_S))
        err = self.err[r]
        err[:, 0] = np.where(np.isnan(err[:, 0]), 0.0, err[:, 0])
        err = np.where(np.isnan(err) & eligible, err[:, :1], err)
        self.err[r] = np.where(
            eligible, err + np.maximum(self.err_alpha, inv) * (np.abs(resid) - err), np.nan
        )
        moved = np.where(fast[:, 0], 0.0, rc[:, 1:].T) if fast.any() else rc[:, 1:].T
        dtv = np.where(dt > 0.0, dt, np.nan)  # NaN (unknown interval) gives one point per bin visit
        for c, (b, p, nb) in enumerate(zip(bins, PERIODS_S, BINS, strict=True)):
            cell = _cells(r, rl, b)
            cnt = self.cnt[cell] + np.float32(1.0)
            per_visit = np.fmax(1.0, (p / nb) / dtv)
            ab = np.maximum(self.bin_alpha / per_visit, 1.0 / cnt)
            self.cnt[cell] = cnt
            self.prof[cell] += ab * moved[c]
            d = self.dev[cell]
            self.dev[cell] = d + ab * (ar[:, c + 1] - d)
        if self.owns_res:
            self.res.learn(rows, values, learn)
