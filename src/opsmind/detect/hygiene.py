"""Data hygiene in front of the detectors: what a detector is allowed to learn from, per series.

:class:`Hygiene` keeps a little state per *row* (one row per series, as the detectors do, see
:mod:`opsmind.detect.base`) and cleans one new point per row at a time, vectorised over rows. The rules,
applied in this order to every point:

1. **Non-finite** - a NaN or infinite timestamp or value is dropped and counted as ``non_finite``. It
   changes no state: a detector never sees a NaN or an infinity, not even as a value to learn from. A
   counter rate that overflows to infinity (garbage input) is dropped the same way.
2. **Duplicate timestamp** - a point with the same timestamp as the last kept point of its row is dropped
   and counted as ``duplicates`` (a scrape retried, a remote-write batch resent). The first value wins,
   because the detectors already scored it.
3. **Out of order** - a point older than the last kept point is dropped and counted as ``out_of_order``:
   the detectors' state only moves forward in time.
4. **First points** pass untouched: a series' cold start is the ensemble's business, not hygiene's (its
   warm-up learns a new series' first minutes without judging them, see
   :mod:`opsmind.detect.ensemble`). The one exception is a counter (below), whose first point only
   primes the rate and is reported as ``counter_primed``.
5. **Counters** - a series whose metric name ends in ``_total`` (the Prometheus convention, see
   :func:`is_counter`) is converted to a per-second rate ``(v - v_prev) / dt``. A decrease means the
   counter restarted from zero (the process restarted), so the rate is ``v / dt``, as Prometheus'
   ``rate()`` assumes; such resets are counted as ``counter_resets``. Negative counter values (which a
   real counter never has) are read as zero on a reset, so the rate is never negative.
6. **Gaps** - when the time since the last kept point exceeds ``gap_factor`` times the series' typical
   interval, the point is flagged in the ``gap`` mask (and counted) so a detector can decay or reset its
   state. The typical interval is an exponentially weighted mean of the intervals seen; an interval in a
   gap moves it by at most ``gap_factor`` times its value, so a series whose scrape interval changed for
   good stops being flagged after a few points.
7. **Constant series** - a row whose (converted) value has not changed for ``constant_after`` points in a
   row is flagged in the ``constant`` mask: its spread is zero, so any change looks infinitely unusual to
   a scale-based detector, and a stuck exporter often looks exactly like this.

Kept points are returned in ``keep``; everything else is what a detector must not learn from.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from opsmind.detect.base import F64, I64, B, grow

I8 = npt.NDArray[np.int8]

#: Reason codes in :attr:`Cleaned.reason`, one per input point.
KEPT = 0
NON_FINITE = 1
DUPLICATE = 2
OUT_OF_ORDER = 3
COUNTER_PRIMED = 4
REASONS = {
    KEPT: "kept",
    NON_FINITE: "non_finite",
    DUPLICATE: "duplicate",
    OUT_OF_ORDER: "out_of_order",
    COUNTER_PRIMED: "counter_primed",
}


def is_counter(metric_name: str) -> bool:
    """Whether a metric is a Prometheus counter by name: counters end in ``_total``."""
    return metric_name.endswith("_total")


def counter_rates(ts: F64, values: F64) -> tuple[F64, F64]:
    """Per-second rates of one counter series, ``ts`` increasing: ``(ts[1:], rates)``.

    Each rate covers the interval ending at its timestamp; a decrease is a reset, so that rate is
    ``max(v, 0) / dt``. Points with a non-finite timestamp, value or rate, or a non-increasing timestamp,
    are left out rather than turned into garbage.
    """
    ok = np.isfinite(ts) & np.isfinite(values)
    t, v = ts[ok], values[ok]
    if len(t) < 2:
        return np.empty(0, np.float64), np.empty(0, np.float64)
    dt = np.diff(t)
    dv = np.diff(v)
    reset = dv < 0
    with np.errstate(all="ignore"):
        inc = np.where(reset, np.maximum(v[1:], 0.0), dv)
        rate = inc / dt
    good = (dt > 0) & np.isfinite(rate)
    return t[1:][good], rate[good]


@dataclass
class HygieneCounts:
    """Running totals of what hygiene dropped or flagged, over all rows."""

    kept: int = 0
    non_finite: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    counter_primed: int = 0
    counter_resets: int = 0
    gaps: int = 0
    constant: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}


class Cleaned(NamedTuple):
    """The result of :meth:`Hygiene.clean_many`, one entry per input point.

    ``keep`` marks the points a detector may score and learn from, ``values`` holds what it should see
    (the rate for a counter, the value itself otherwise; NaN where not kept), ``gap`` flags a kept point
    that follows a gap, ``constant`` a kept point whose series has been flat for a while, and ``reason``
    says why a point was dropped (see :data:`REASONS`).
    """

    keep: B
    values: F64
    gap: B
    constant: B
    reason: I8


class Hygiene:
    """Per-series cleaning rules (see the module docstring) over struct-of-arrays state."""

    def __init__(
        self, gap_factor: float = 3.0, constant_after: int = 30, interval_alpha: float = 0.1
    ) -> None:
        if gap_factor <= 1.0:
            raise ValueError("gap_factor must exceed 1")
        if constant_after < 2:
            raise ValueError("constant_after must be at least 2")
        if not 0.0 < interval_alpha <= 1.0:
            raise ValueError("interval_alpha must be in (0, 1]")
        self.gap_factor = gap_factor
        self.constant_after = constant_after
        self.interval_alpha = interval_alpha
        self.counts = HygieneCounts()
        self._last_ts = np.empty(0, np.float64)  # NaN until a point is kept
        self._interval = np.empty(0, np.float64)  # NaN until an interval is seen
        self._last_out = np.empty(0, np.float64)  # last value handed to the detectors
        self._run = np.empty(0, np.int64)  # points in a row with that same value
        self._last_raw = np.empty(0, np.float64)  # counters: the last raw counter value
        self._counter = np.empty(0, np.bool_)

    def ensure_rows(self, n_rows: int) -> None:
        """Grow the state so rows ``0 .. n_rows - 1`` exist (new rows start empty, not counters)."""
        self._last_ts = grow(self._last_ts, n_rows, np.nan)
        self._interval = grow(self._interval, n_rows, np.nan)
        self._last_out = grow(self._last_out, n_rows, np.nan)
        self._run = grow(self._run, n_rows, 0)
        self._last_raw = grow(self._last_raw, n_rows, np.nan)
        self._counter = grow(self._counter, n_rows, False)

    def mark_counters(self, rows: I64, metric_names: list[str]) -> None:
        """Declare which rows are counters, from their metric names (call once when a row is assigned)."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows):
            self.ensure_rows(int(rows.max()) + 1)
        flags = np.fromiter((is_counter(n) for n in metric_names), dtype=np.bool_, count=len(metric_names))
        self._counter[rows] = flags

    @property
    def nbytes_per_series(self) -> int:
        return 8 * 5 + 1

    def clean_many(self, rows: I64, ts: F64, values: F64) -> Cleaned:
        """Clean one batch of points, updating the state. Rows may repeat: the points of one row are
        taken in the order given (as rounds, each row at most once per round). Never raises on bad data."""
        rows = np.asarray(rows, dtype=np.int64)
        ts = np.asarray(ts, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64)
        n = len(rows)
        if not (len(ts) == len(values) == n):
            raise ValueError("rows, ts and values must have the same length")
        out = Cleaned(
            keep=np.zeros(n, np.bool_),
            values=np.full(n, np.nan),
            gap=np.zeros(n, np.bool_),
            constant=np.zeros(n, np.bool_),
            reason=np.zeros(n, np.int8),
        )
        if n == 0:
            return out
        if int(rows.min()) < 0:
            raise ValueError("rows must be non-negative")
        self.ensure_rows(int(rows.max()) + 1)
        for idx in _rounds(rows):
            self._clean_round(idx, rows[idx], ts[idx], values[idx], out)
        c = self.counts
        c.kept += int(np.count_nonzero(out.keep))
        c.gaps += int(np.count_nonzero(out.gap))
        c.constant += int(np.count_nonzero(out.constant))
        for code, counter in (
            (NON_FINITE, "non_finite"),
            (DUPLICATE, "duplicates"),
            (OUT_OF_ORDER, "out_of_order"),
            (COUNTER_PRIMED, "counter_primed"),
        ):
            setattr(c, counter, getattr(c, counter) + int(np.count_nonzero(out.reason == code)))
        return out

    def _clean_round(self, idx: I64, rows: I64, ts: F64, values: F64, out: Cleaned) -> None:
        """One round: every row at most once, so fancy-indexed state updates do not collide."""
        reason = np.zeros(len(rows), np.int8)
        last_ts = self._last_ts[rows]
        finite = np.isfinite(ts) & np.isfinite(values)
        reason[~finite] = NON_FINITE
        seen = ~np.isnan(last_ts)
        with np.errstate(invalid="ignore"):
            reason[finite & seen & (ts == last_ts)] = DUPLICATE
            reason[finite & seen & (ts < last_ts)] = OUT_OF_ORDER
        fresh = reason == KEPT
        with np.errstate(all="ignore"):
            dt = np.where(seen, ts - last_ts, np.nan)

        # Counters: turn the raw value into a per-second rate; a first point only primes the rate.
        counter = self._counter[rows] & fresh
        prev_raw = self._last_raw[rows]
        shown = values.copy()
        if counter.any():
            primed = counter & np.isnan(prev_raw)
            with np.errstate(all="ignore"):
                reset = counter & ~primed & (values < prev_raw)
                inc = np.where(reset, np.maximum(values, 0.0), values - prev_raw)
                shown = np.where(counter, inc / dt, values)
            self._last_raw[rows[counter]] = values[counter]
            reason[primed] = COUNTER_PRIMED
            overflow = counter & ~primed & ~np.isfinite(shown)
            reason[overflow] = NON_FINITE
            self.counts.counter_resets += int(np.count_nonzero(reset & ~overflow))

        keep = reason == KEPT
        # A primed counter still moves time forward, so its next point gets a proper interval.
        advance = keep | (reason == COUNTER_PRIMED)

        # Gaps, against the typical interval, which then learns the new interval (clipped in a gap).
        interval = self._interval[rows]
        with np.errstate(all="ignore"):
            limit = self.gap_factor * interval
            gap = keep & seen & ~np.isnan(interval) & (dt > limit)
            learn_dt = np.where(gap, limit, dt)
            a = self.interval_alpha
            new_interval = np.where(np.isnan(interval), learn_dt, (1 - a) * interval + a * learn_dt)
        upd = advance & seen
        self._interval[rows[upd]] = new_interval[upd]
        self._last_ts[rows[advance]] = ts[advance]

        # Constant runs, on the value the detectors see.
        run = self._run[rows]
        same = keep & (shown == self._last_out[rows])
        new_run = np.where(same, run + 1, 1)
        self._run[rows[keep]] = new_run[keep]
        self._last_out[rows[keep]] = shown[keep]
        constant = keep & (new_run >= self.constant_after)

        out.keep[idx] = keep
        out.values[idx] = np.where(keep, shown, np.nan)
        out.gap[idx] = gap
        out.constant[idx] = constant
        out.reason[idx] = reason


def _rounds(rows: I64) -> list[I64]:
    """Indices of ``rows`` split into rounds: each row's first occurrence, then its second, ..."""
    if len(np.unique(rows)) == len(rows):
        return [np.arange(len(rows), dtype=np.int64)]
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    starts = np.r_[True, sorted_rows[1:] != sorted_rows[:-1]]
    group_start = np.maximum.accumulate(np.where(starts, np.arange(len(rows)), 0))
    occurrence = np.empty(len(rows), np.int64)
    occurrence[order] = np.arange(len(rows)) - group_start
    return [np.flatnonzero(occurrence == k).astype(np.int64) for k in range(int(occurrence.max()) + 1)]
