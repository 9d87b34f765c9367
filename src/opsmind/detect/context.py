"""Contextual (sequence-novelty) detector: how unexpected is the current value's *level* after the recent
sequence of levels?

Written from the published description of the Contextual Anomaly Detector (CAD OSE, M. Smirnov, NAB
2016): values are quantised into a few levels relative to a running range, short contexts of recent
levels are learned online, and a point is anomalous when its transition was rarely or never seen. This
detector carries information the residual detectors of the ensemble do not: a series that changes its
*shape* while staying inside its usual range (a new rhythm, a stuck or missing oscillation) is novel here
and ordinary for a residual-magnitude detector. Our formulation (not CAD's semantic network) is a
variable-order Markov model with interpolated (Dirichlet back-off) estimates:

* range: per row ``lo``/``hi`` follow the running minimum and maximum of the learned values and contract
  towards each other by ``contract`` of their span per learned point, so an old extreme is forgotten
  after a few thousand points;
* level: ``floor(levels * (x - lo') / (hi' - lo'))`` clipped to ``0 .. levels - 1``, where ``lo'``/``hi'``
  is the range widened to include ``x`` (the middle level while that span is 0), so a value off a
  constant series is at an extreme level, unseen after the constant's middle one;
* history: the last three *distinct* levels (runs of one level are compressed, so a slow series does not
  fill its contexts with repeats); it starts as all zeros;
* counts: per row, counts of the next level after the empty context (order 0), after the last level
  (order 1, 8 x 8), after the last two levels (order 2, 64 x 8) and after the last three, hashed into
  ``ORDER3_BUCKETS`` buckets (order 3); uint8, a context's counts are halved when one of them reaches
  255, so old habits fade;
* score: ``-log2 p`` with ``p_0 = (c_0[l] + 1) / (n_0 + L)`` and
  ``p_k = (c_k[ctx, l] + L p_{k-1}) / (n_k[ctx] + L)`` for k = 1, 2, 3 (each order backs off to the one
  below with prior weight ``L``); an unseen transition after a well-known context scores high.

Settings (8 levels, 3 distinct levels of context, ``contract`` 1e-3) were chosen on the trace corpus of
``opsmind bench nab-corpus`` (seed 1) and were flat there (K 3/4/6, levels 8/12/16, contract 3e-4 .. 3e-3
all within 2.5 points); never on NAB.

Edge cases: NaN until ``min_points`` points were learned or for a NaN value, ``inf`` for ``+-inf``;
neither is learned. A constant series scores ~0 once learned; a value off a constant series falls into a
new (extreme) level and scores as unseen. Memory: 1,128 bytes per row (the count tables are
most of it), so it is not part of the default ensemble's 4 KB budget; it is scored on its own by
``opsmind bench nab`` as ``opsmind_context``.
"""

from __future__ import annotations

import numpy as np

from opsmind.detect.base import F64, I64, B, grow

LEVELS = 8
ORDER3_BUCKETS = 64
CAP = 255


class ContextDetector:
    name = "context"

    def __init__(self, contract: float = 1e-3, min_points: int = 10) -> None:
        self.contract = contract
        self.min_points = min_points
        self.lo = np.zeros(0)
        self.hi = np.zeros(0)
        self.n = np.zeros(0)
        self.hist = np.zeros((0, 3), dtype=np.int64)  # last three distinct levels, most recent last
        self.c0 = np.zeros((0, LEVELS), dtype=np.uint8)
        self.c1 = np.zeros((0, LEVELS, LEVELS), dtype=np.uint8)
        self.c2 = np.zeros((0, LEVELS * LEVELS, LEVELS), dtype=np.uint8)
        self.c3 = np.zeros((0, ORDER3_BUCKETS, LEVELS), dtype=np.uint8)

    def ensure_rows(self, n_rows: int) -> None:
        self.lo = grow(self.lo, n_rows, np.nan)
        self.hi = grow(self.hi, n_rows, np.nan)
        self.n = grow(self.n, n_rows, 0.0)
        self.hist = grow(self.hist, n_rows, 0)
        self.c0 = grow(self.c0, n_rows, 0)
        self.c1 = grow(self.c1, n_rows, 0)
        self.c2 = grow(self.c2, n_rows, 0)
        self.c3 = grow(self.c3, n_rows, 0)

    @property
    def nbytes_per_series(self) -> int:
        counts = LEVELS * (1 + LEVELS + LEVELS * LEVELS + ORDER3_BUCKETS)
        return 3 * 8 + 3 * 1 + counts  # lo, hi, n; history as 3 levels (one byte each when packed)

    def _level(self, rows: I64, values: F64) -> I64:
        # The range is widened by the value itself (so the value is known, the past is not peeked at);
        # a zero span (a constant series so far, or the first point) is the middle level.
        with np.errstate(invalid="ignore", divide="ignore"):
            lo, hi = np.fmin(self.lo[rows], values), np.fmax(self.hi[rows], values)
            span = hi - lo
            q = np.where(span > 0, (values - lo) / np.where(span > 0, span, 1.0) * LEVELS, LEVELS // 2)
        q = np.nan_to_num(q, nan=LEVELS // 2, posinf=LEVELS - 1, neginf=0.0)
        return np.clip(np.floor(q), 0, LEVELS - 1).astype(np.int64)

    def _contexts(self, rows: I64) -> tuple[I64, I64, I64]:
        h = self.hist[rows]
        k1 = h[:, 2]
        k2 = h[:, 1] * LEVELS + h[:, 2]
        k3 = ((h[:, 0] * LEVELS + h[:, 1]) * LEVELS + h[:, 2]) * 2654435761 % 4294967296
        return k1, k2, k3 % ORDER3_BUCKETS

    def score_many(self, rows: I64, ts: F64, values: F64) -> F64:
        self.ensure_rows(int(rows.max()) + 1 if len(rows) else 0)
        lev = self._level(rows, values)
        k1, k2, k3 = self._contexts(rows)
        sel = np.arange(len(rows))
        p = None
        for counts in (self.c0[rows], self.c1[rows, k1], self.c2[rows, k2], self.c3[rows, k3]):
            c = counts.astype(np.float64)
            prior = 1.0 / LEVELS if p is None else p
            p = (c[sel, lev] + LEVELS * prior) / (c.sum(axis=1) + LEVELS)
        assert p is not None
        out = -np.log2(p)
        out[self.n[rows] < self.min_points] = np.nan
        out[np.isinf(values)] = np.inf
        out[np.isnan(values)] = np.nan
        return np.asarray(out)

    def learn_many(self, rows: I64, ts: F64, values: F64, learn: B) -> None:
        self.ensure_rows(int(rows.max()) + 1 if len(rows) else 0)
        ok = learn & np.isfinite(values)
        r, x = rows[ok], values[ok]
        if not len(r):
            return
        first = self.n[r] == 0
        lo = np.where(first, x, self.lo[r])
        hi = np.where(first, x, self.hi[r])
        self.lo[r], self.hi[r] = lo, hi
        lev = self._level(r, x)
        k1, k2, k3 = self._contexts(r)
        for table, idx in ((self.c0, None), (self.c1, k1), (self.c2, k2), (self.c3, k3)):
            row_counts = table[r] if idx is None else table[r, idx]  # [n, LEVELS] copies
            sel = np.arange(len(r))
            row_counts[sel, lev] += 1
            full = row_counts[sel, lev] >= CAP
            row_counts[full] >>= 1
            if idx is None:
                table[r] = row_counts
            else:
                table[r, idx] = row_counts
        h = self.hist[r]
        moved = h[:, 2] != lev
        self.hist[r] = np.where(moved[:, None], np.column_stack([h[:, 1], h[:, 2], lev]), h)
        span = hi - lo
        self.hi[r] = np.maximum(hi - self.contract * span, x)
        self.lo[r] = np.minimum(lo + self.contract * span, x)
        self.n[r] += 1.0


def context_series(values: F64, contract: float = 1e-3, min_points: int = 10) -> F64:
    """:class:`ContextDetector` on one whole series, strictly online (score, then learn every finite
    point), in plain Python: the same arithmetic as the vectorised path (tested equal), without numpy's
    per-call overhead, for benchmarks that feed one series a point at a time."""
    n_tab = [[0] * LEVELS]
    t1 = [[0] * LEVELS for _ in range(LEVELS)]
    t2 = [[0] * LEVELS for _ in range(LEVELS * LEVELS)]
    t3 = [[0] * LEVELS for _ in range(ORDER3_BUCKETS)]
    h0 = h1 = h2 = 0
    lo = hi = 0.0
    n = 0
    xs = np.asarray(values, dtype=np.float64).tolist()
    out = np.full(len(xs), np.nan)
    for i, x in enumerate(xs):
        if x != x:  # NaN
            continue
        if x in (np.inf, -np.inf):
            out[i] = np.inf
            continue
        if n == 0:
            lo = hi = x
        span = hi - lo
        wlo, whi = min(lo, x), max(hi, x)
        lev = min(LEVELS - 1, int((x - wlo) / (whi - wlo) * LEVELS)) if whi > wlo else LEVELS // 2
        k3 = ((h0 * LEVELS + h1) * LEVELS + h2) * 2654435761 % 4294967296 % ORDER3_BUCKETS
        tables = (n_tab[0], t1[h2], t2[h1 * LEVELS + h2], t3[k3])
        if n >= min_points:
            p = 1.0 / LEVELS
            for c in tables:
                p = (c[lev] + LEVELS * p) / (sum(c) + LEVELS)
            out[i] = -np.log2(p)
        for c in tables:
            c[lev] += 1
            if c[lev] >= CAP:
                c[:] = [v >> 1 for v in c]
        if lev != h2:
            h0, h1, h2 = h1, h2, lev
        hi, lo = max(hi - contract * span, x), min(lo + contract * span, x)
        n += 1
    return out
