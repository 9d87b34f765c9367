"""The detector contract: many series at once over struct-of-arrays state, one series for convenience.

Every detector keeps its per-series state in numpy arrays indexed by a *row* (one row per series, from a
shared :class:`SeriesIndex`), so a step of thousands of series is a handful of vectorised operations.

- ``score_many(rows, ts, values)`` scores one new point per row (rows distinct within a call) using only
  the past; it returns raw scores (higher = more anomalous, >= 0) and NaN where a row is still in its
  cold start. It must not change state.
- ``learn_many(rows, ts, values, learn)`` updates the state with the points where ``learn`` is True. The
  caller passes ``learn=False`` for points judged anomalous, so a detector protects itself; a lasting
  shift is accepted by the caller's rule (see :class:`~opsmind.detect.ensemble.Ensemble`).
- ``nbytes_per_series`` reports the state's memory per row, for the memory budget.

Scoring (the detector), calibration (:mod:`opsmind.detect.calibrate`, raw score -> probability) and the
alarm rule (a threshold on the probability) are separate objects.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]


class Detector(Protocol):
    name: str

    def ensure_rows(self, n_rows: int) -> None:
        """Grow the state so rows ``0 .. n_rows - 1`` exist (new rows start empty)."""
        ...

    def score_many(self, rows: I64, ts: F64, values: F64) -> F64: ...

    def learn_many(self, rows: I64, ts: F64, values: F64, learn: B) -> None: ...

    @property
    def nbytes_per_series(self) -> int: ...


class SeriesIndex:
    """Rows for series keys: assigned in arrival order, never reused."""

    def __init__(self) -> None:
        self._rows: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def row(self, key: str) -> int:
        r = self._rows.get(key)
        if r is None:
            r = self._rows[key] = len(self._rows)
        return r

    def rows(self, keys: list[str]) -> I64:
        return np.fromiter((self.row(k) for k in keys), dtype=np.int64, count=len(keys))


A = TypeVar("A", bound=npt.NDArray[Any])


def grow(a: A, n_rows: int, fill: float) -> A:
    """``a`` with at least ``n_rows`` rows (doubling, so growth is amortised), new rows set to ``fill``."""
    if len(a) >= n_rows:
        return a
    out = np.full((max(n_rows, 2 * len(a), 64), *a.shape[1:]), fill, dtype=a.dtype)
    out[: len(a)] = a
    return out  # type: ignore[return-value]  # same dtype and rank as ``a``


Rows = I64 | slice


def as_run(rows: I64) -> Rows:
    """``rows`` as a slice when they are one ascending run (``k, k+1, ..., k+n-1``), else unchanged.

    Indexing state with a slice gives views instead of gathered copies; when a fleet's series arrive in
    the same order every round (a scrape, a remote-write batch), a whole step is one run and the
    detectors' per-row updates become plain strided array operations. Callers must only use the result
    to index state arrays (``state[run]``), never as data."""
    n = len(rows)
    if n == 0:
        return rows
    first, last = int(rows[0]), int(rows[-1])
    if last - first + 1 != n or (n > 1 and not bool((rows[1:] - rows[:-1] == 1).all())):
        return rows
    return slice(first, last + 1)


def learned(rows: I64, ok: B) -> tuple[I64, Rows]:
    """The rows to learn (``rows[ok]``) and the same as an index into state (see :func:`as_run`)."""
    if bool(ok.all()):
        return rows, as_run(rows)
    r = rows[ok]
    return r, r
