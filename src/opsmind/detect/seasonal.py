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

from opsmind.detect.base import F64, I64, B, grow
from opsmind.detect.jit import kernel
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


F32 = npt.NDArray[np.float32]


def _grow_cols(a: F32, n_rows: int) -> F32:
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

    def chosen(self, rows: I64) -> I64:
        """The candidate each row scores with (0 = none, 1 = hour, 2 = day, 3 = week)."""
        return _chosen_rows(rows, self.err)

    def expected_and_scale(self, rows: I64, ts: F64) -> tuple[F64, F64]:
        e, s = _expected_rows(rows, ts, self.level, self.gdev, self.err, self.prof, self.dev, self.cnt)
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
        r, t, x = rows[ok], ts[ok], values[ok]
        _learn_rows(
            r, t, x, self.res.n[r] + 1.0, self.res.floor(r, x),
            self.level, self.gdev, self.err, self.prof, self.dev, self.cnt,
            self.dt, self.t0, self.last_ts, self.run,
            self.level_alpha, self.bin_alpha, self.err_alpha,
        )  # fmt: skip
        if self.owns_res:
            self.res.learn(rows, values, learn)


@kernel
def _nanmax(a: float, b: float) -> float:
    """``np.maximum`` of two scalars: NaN if either is NaN."""
    return a if (a != a or a >= b) else b


@kernel
def _choose(err: F64, r: int) -> int:
    """The candidate with the smallest (penalised) error; a NaN error (not yet eligible) never wins,
    ties go to the first."""
    best = err[r, 0] if err[r, 0] == err[r, 0] else np.inf
    ch = 0
    for c in range(1, N_CAND):
        e = err[r, c] * SEASON_PENALTY
        if e < best:
            ch, best = c, e
    return ch


@kernel
def _chosen_rows(rows: I64, err: F64) -> I64:
    out = np.empty(len(rows), dtype=np.int64)
    for i in range(len(rows)):
        out[i] = _choose(err, rows[i])
    return out


@kernel
def _predict_row(
    r: int, ti: float, level: F64, gdev: F64,
    prof: F32, dev: F32, cnt: F32,
    exp: F64, dv: F64, cells: I64,
) -> None:  # fmt: skip
    """Every candidate's expected value (``exp``) and raw phase deviation (``dv``) for row ``r`` at time
    ``ti``, and the phase-bin cell of each seasonal candidate (``cells``)."""
    exp[0], dv[0] = level[r, 0], gdev[r, 0]
    for c in range(1, N_CAND):
        p, nb = PERIODS_S[c - 1], BINS[c - 1]
        cell = int(np.floor((ti % p) * (nb / p))) % nb + OFFSETS[c - 1]
        cells[c - 1] = cell
        exp[c] = level[r, c] + np.float64(prof[cell, r])
        g = gdev[r, c]
        dv[c] = _nanmax(np.float64(dev[cell, r]), 0.5 * g) if cnt[cell, r] > 0.0 else g


@kernel
def _expected_rows(
    rows: I64, ts: F64, level: F64, gdev: F64, err: F64, prof: F32, dev: F32, cnt: F32
) -> tuple[F64, F64]:
    """Expected value and scale (before the resolution floor) of each row's chosen candidate."""
    exp, dv = np.empty(N_CAND), np.empty(N_CAND)
    cells = np.empty(N_CAND - 1, dtype=np.int64)
    e, s = np.empty(len(rows)), np.empty(len(rows))
    for i in range(len(rows)):
        r = rows[i]
        _predict_row(r, ts[i], level, gdev, prof, dev, cnt, exp, dv, cells)
        ch = _choose(err, r)
        e[i], s[i] = exp[ch], MAD_TO_SIGMA * dv[ch]
    return e, s


@kernel
def _learn_rows(
    rows: I64, t: F64, x: F64, n: F64, floor: F64,
    level: F64, gdev: F64, err: F64,
    prof: F32, dev: F32, cnt: F32,
    dt: F64, t0: F64, last_ts: F64, run: F64,
    level_alpha: float, bin_alpha: float, err_alpha: float,
) -> None:  # fmt: skip
    """The learning update of the module docstring for the learned points ``x`` of ``rows`` (distinct),
    one row at a time: predict from the state as it stands, then move it."""
    exp = np.empty(N_CAND)
    dv = np.empty(N_CAND)
    resid = np.empty(N_CAND)
    rc = np.empty(N_CAND)
    lim = np.empty(N_CAND)
    cells = np.empty(N_CAND - 1, dtype=np.int64)
    for i in range(len(rows)):
        r, ti, xi = rows[i], t[i], x[i]
        ch = _choose(err, r)  # the candidate the score used
        _predict_row(r, ti, level, gdev, prof, dev, cnt, exp, dv, cells)
        # Sampling interval and age, for the per-bin rate and the candidates' eligibility.
        if t0[r] != t0[r]:
            t0[r] = ti
        gap = ti - last_ts[r]
        d = dt[r]
        if d != d:
            d = gap
        elif gap > 0:
            d = d + 0.05 * (gap - d)
        dt[r], last_ts[r] = d, ti
        if level[r, 0] != level[r, 0]:  # a new row: every level starts at its first value
            for c in range(N_CAND):
                level[r, c] = xi
                exp[c] = xi
        for c in range(N_CAND):
            resid[c] = xi - exp[c]
            scale = _nanmax(MAD_TO_SIGMA * dv[c], floor[i])
            lim[c] = CLIP * (scale if scale > 0.0 else np.inf)
            rc[c] = min(max(resid[c], -lim[c]), lim[c]) if resid[c] == resid[c] else resid[c]
        # A run of large learned residuals is a new regime the caller accepted: re-centre quickly.
        run[r] = run[r] + 1.0 if abs(resid[ch]) > lim[ch] else 0.0
        fast = run[r] >= RECENTRE_AFTER
        inv = 1.0 / n[i]
        rate, grate = max(level_alpha, inv), max(0.05, inv)
        for c in range(N_CAND):
            level[r, c] += RECENTRE_ALPHA * resid[c] if fast else rate * rc[c]
            gdev[r, c] += grate * (abs(rc[c]) - gdev[r, c])
        age = ti - t0[r]
        e0 = err[r, 0] if err[r, 0] == err[r, 0] else 0.0
        erate = max(err_alpha, inv)
        for c in range(N_CAND):
            if age >= (0.0 if c == 0 else PERIODS_S[c - 1]):
                e = e0 if (c == 0 or err[r, c] != err[r, c]) else err[r, c]
                err[r, c] = e + erate * (abs(resid[c]) - e)
            else:
                err[r, c] = np.nan
        dtv = d if d > 0.0 else np.nan  # NaN (unknown interval) gives one point per bin visit
        for c in range(1, N_CAND):
            cell = cells[c - 1]
            p, nb = PERIODS_S[c - 1], BINS[c - 1]
            cn = cnt[cell, r] + np.float32(1.0)
            per_visit = np.fmax(1.0, (p / nb) / dtv)
            ab = max(bin_alpha / per_visit, np.float64(np.float32(1.0) / cn))
            cnt[cell, r] = cn
            moved = 0.0 if fast else rc[c]
            prof[cell, r] = np.float64(prof[cell, r]) + ab * moved
            dd = np.float64(dev[cell, r])
            dev[cell, r] = dd + ab * (abs(rc[c]) - dd)
