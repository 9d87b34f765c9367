"""The Numenta Anomaly Benchmark score, written from NAB's published rules.

Per file of N rows, the first ``min(floor(0.15 N), 0.15 * 5000)`` rows are probationary and not scored at
all. A scored row is a detection when its anomaly score is ``>= threshold``. With the scaled sigmoid
``sig(y) = 2 / (1 + exp(5 y)) - 1`` (``-1`` once ``y >= 3``, NAB's cap):

* inside a window of W rows with right edge R, a detection at row i has ``y = -(R - i + 1) / W`` and is
  worth ``tpWeight * sig(y) / sig(-1)`` (1 at the window's first row, about 0 at its last); only the
  window's best, i.e. earliest, detection counts; a window without one costs ``-fnWeight``;
* outside windows every detection counts: after a window (right edge R, width W) it is worth
  ``fpWeight * sig(|R - i| / (W - 1))`` (about 0 just after the window, ``-fpWeight`` far from it), and
  ``-fpWeight`` before the file's first window.

A window with no scored row (wholly inside the probationary period) is not counted, as in NAB. A
one-row window (never in NAB) uses ``W - 1 = 1`` for the rows after it.

The threshold is one per detector and profile: :func:`sweep` sorts every scored (score, row) of the
corpus once and evaluates EVERY distinct score as a candidate threshold incrementally (exact, O(n log n)),
plus "detect nothing"; the best total raw score wins (ties go to the higher threshold). The normalised
score is ``100 * (raw - raw_null) / (perfect - raw_null)`` with ``raw_null = -fnWeight * windows`` and
``perfect = tpWeight * windows``; per category the same formula uses the category's windows (undefined,
``None``, for a category without windows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from opsmind.bench.nab_data import NabFile, Profile

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
PROBATION_PERCENT = 0.15


def scaled_sigmoid(y: float) -> float:
    if y >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


MAX_TP = scaled_sigmoid(-1.0)


def probation_rows(n: int, percent: float = PROBATION_PERCENT) -> int:
    """Rows at the start of a file that are never scored: ``min(floor(p N), p * 5000)``, as a row count."""
    return math.ceil(min(math.floor(percent * n), percent * 5000))


@dataclass(frozen=True)
class FileGeometry:
    """Where each scored row of one file sits relative to its windows; independent of any detector."""

    name: str
    category: str
    n: int
    probation: int
    window_of: I64  # per scored row (rows probation..n-1): index of its window in the file, -1 outside
    weight: F64  # per scored row: inside a window sig(y)/sig(-1) in (0, 1]; outside sig(y) in [-1, 0]
    windows: int  # windows with at least one scored row


def geometry(
    name: str, n: int, windows: Sequence[tuple[int, int]], percent: float = PROBATION_PERCENT
) -> FileGeometry:
    """Label every row of a file of ``n`` rows with ``windows`` ([left, right] row indices, inclusive)."""
    window_of = np.full(n, -1, dtype=np.int64)
    weight = np.empty(n, dtype=np.float64)
    prev: tuple[int, int] | None = None  # (right edge, width) of the preceding window
    start = 0
    for k, (left, right) in enumerate(list(windows) + [(n, n - 1)]):
        for i in range(start, min(left, n)):  # rows between the previous window and this one
            if prev is None:
                weight[i] = -1.0
            else:
                weight[i] = scaled_sigmoid(abs(prev[0] - i) / max(prev[1] - 1, 1))
        if left >= n:
            break
        width = right - left + 1
        for i in range(left, right + 1):
            weight[i] = scaled_sigmoid(-(right - i + 1) / width) / MAX_TP
        window_of[left : right + 1] = k
        prev, start = (right, width), right + 1
    p = probation_rows(n, percent)
    scored = window_of[p:]
    counted = len(np.unique(scored[scored >= 0]))
    return FileGeometry(name, name.split("/", 1)[0], n, p, scored.copy(), weight[p:].copy(), counted)


def geometries(files: Sequence[NabFile]) -> list[FileGeometry]:
    return [geometry(f.name, len(f), f.windows) for f in files]


@dataclass(frozen=True)
class Counts:
    raw: float
    windows: int
    tp: int  # windows detected
    fn: int  # windows missed
    fp: int  # detections outside windows

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.raw + other.raw,
            self.windows + other.windows,
            self.tp + other.tp,
            self.fn + other.fn,
            self.fp + other.fp,
        )


ZERO = Counts(0.0, 0, 0, 0, 0)


def score_file(geo: FileGeometry, scores: F64, threshold: float, profile: Profile) -> Counts:
    """Raw NAB score of one file's anomaly scores (one per row, probationary rows too) at ``threshold``."""
    if len(scores) != geo.n:
        raise ValueError(f"{geo.name}: {len(scores)} scores for {geo.n} rows")
    det = np.asarray(scores[geo.probation :] >= threshold)
    outside = det & (geo.window_of < 0)
    raw = profile.fp_weight * float(geo.weight[outside].sum())
    tp = fn = 0
    for k in np.unique(geo.window_of[geo.window_of >= 0]):
        hits = det & (geo.window_of == k)
        if hits.any():
            tp += 1
            raw += profile.tp_weight * float(geo.weight[hits].max())
        else:
            fn += 1
            raw -= profile.fn_weight
    return Counts(raw, geo.windows, tp, fn, int(outside.sum()))


def normalised(raw: float, windows: int, profile: Profile) -> float | None:
    null = -profile.fn_weight * windows
    perfect = profile.tp_weight * windows
    if perfect == null:
        return None
    return 100.0 * (raw - null) / (perfect - null)


@dataclass(frozen=True)
class Sweep:
    """Every candidate threshold of one detector over a corpus, highest first, with the profile-free sums
    that give its raw score: ``tp * tp_sum - fn * (windows - hits) + fp * fp_sum``. Index 0 is +inf
    ("detect nothing")."""

    thresholds: F64
    tp_sum: F64
    hits: F64
    fp_sum: F64
    windows: int

    def raw(self, profile: Profile) -> F64:
        missed = self.windows - self.hits
        return profile.tp_weight * self.tp_sum - profile.fn_weight * missed + profile.fp_weight * self.fp_sum

    def best(self, profile: Profile) -> tuple[float, float]:
        """``(threshold, raw score)`` of the best candidate; ties go to the higher threshold."""
        raw = self.raw(profile)
        k = int(np.argmax(raw))
        return float(self.thresholds[k]), float(raw[k])


def sweep(geos: Sequence[FileGeometry], scores: Sequence[F64]) -> Sweep:
    """Sort all scored (score, row) pairs once; each distinct score is a threshold evaluated incrementally.

    Lowering the threshold past a row adds the row: outside a window its weight joins the false-positive
    sum; inside a window it counts only if it beats the window's best detection so far (a running max per
    window in sorted order), and the first detection of a window also turns a miss into a hit."""
    s_parts, g_parts, w_parts = [], [], []
    base = 0
    for geo, sc in zip(geos, scores, strict=True):
        if len(sc) != geo.n:
            raise ValueError(f"{geo.name}: {len(sc)} scores for {geo.n} rows")
        s_parts.append(np.nan_to_num(np.asarray(sc[geo.probation :], dtype=np.float64), nan=-np.inf))
        g_parts.append(np.where(geo.window_of >= 0, geo.window_of + base, -1))
        w_parts.append(geo.weight)
        base += int(geo.window_of.max(initial=-1)) + 1
    s = np.concatenate(s_parts) if s_parts else np.zeros(0)
    g = np.concatenate(g_parts) if g_parts else np.zeros(0, dtype=np.int64)
    w = np.concatenate(w_parts) if w_parts else np.zeros(0)
    windows = sum(geo.windows for geo in geos)
    order = np.argsort(-s, kind="stable")
    s, g, w = s[order], g[order], w[order]
    fp_inc = np.where(g < 0, w, 0.0)
    tp_inc = np.zeros(len(s))
    hit_inc = np.zeros(len(s))
    inside = np.flatnonzero(g >= 0)
    by_window = inside[np.argsort(g[inside], kind="stable")]  # grouped by window, in sorted-score order
    cuts = np.flatnonzero(np.diff(g[by_window])) + 1
    for rows in np.split(by_window, cuts) if len(by_window) else []:
        best = np.maximum.accumulate(w[rows])
        tp_inc[rows] = np.diff(best, prepend=0.0)
        hit_inc[rows[0]] = 1.0
    ends = np.append(np.flatnonzero(s[1:] != s[:-1]), len(s) - 1) if len(s) else np.zeros(0, dtype=np.int64)

    def at_ends(inc: F64) -> F64:
        return np.concatenate(([0.0], np.cumsum(inc)[ends]))

    return Sweep(
        np.concatenate(([np.inf], s[ends])), at_ends(tp_inc), at_ends(hit_inc), at_ends(fp_inc), windows
    )


@dataclass(frozen=True)
class ProfileResult:
    profile: Profile
    threshold: float
    total: Counts
    score: float  # normalised over the corpus
    categories: dict[str, Counts] = field(default_factory=dict)
    # The best normalised score among thresholds that detect something (None: no candidate); equals
    # ``score`` unless "detect nothing" won, when it shows how far below 0 the detector's best attempt is.
    best_detecting: float | None = None

    def category_score(self, category: str) -> float | None:
        c = self.categories[category]
        return normalised(c.raw, c.windows, self.profile)


def evaluate(
    geos: Sequence[FileGeometry], scores: Sequence[F64], profiles: Sequence[Profile]
) -> list[ProfileResult]:
    """For each profile: the corpus-wide best threshold, then every file scored at it."""
    sw = sweep(geos, scores)
    out = []
    for profile in profiles:
        threshold, _ = sw.best(profile)
        raws = sw.raw(profile)[1:]
        windows = sw.windows
        best_detecting = normalised(float(raws.max()), windows, profile) if len(raws) else None
        cats: dict[str, Counts] = {}
        for geo, sc in zip(geos, scores, strict=True):
            cats[geo.category] = cats.get(geo.category, ZERO) + score_file(geo, sc, threshold, profile)
        total = sum(cats.values(), ZERO)
        score = normalised(total.raw, total.windows, profile)
        score = 0.0 if score is None else score
        out.append(ProfileResult(profile, threshold, total, score, cats, best_detecting))
    return out
