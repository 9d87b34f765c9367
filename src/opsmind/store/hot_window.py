"""The detectors' in-memory history: the newest ``capacity_points`` points of every series.

Storage is struct-of-arrays so that a window is a slice and a batch update is a few numpy operations:
one row per series in two ``float32 [n_series, capacity]`` matrices (values, and timestamps as offsets
from a per-series ``float64`` base), used as ring buffers. That is 8 bytes per point. A float32 offset
keeps about 7 significant digits, so the base is moved forward (the offsets rewritten) once the newest
point is more than ``REBASE_AFTER_S`` past it: while a window spans less than that, timestamps read back
within about 10 ms.

Points must arrive in time order per series. A point older than the newest one of its series is dropped
and counted in ``dropped_out_of_order``; a point with exactly the newest timestamp (a resent sample) is
dropped and counted in ``dropped_duplicates``, so a retried delivery is not counted twice. The class is
not thread-safe: one task owns it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


class HotWindow:
    REBASE_AFTER_S = 65_536.0

    def __init__(self, capacity_points: int, initial_series: int = 1024) -> None:
        if capacity_points < 1:
            raise ValueError("capacity_points must be at least 1")
        self.capacity = capacity_points
        self._rows: dict[str, int] = {}
        n = max(1, initial_series)
        self._values = np.zeros((n, capacity_points), dtype=np.float32)
        self._offsets = np.zeros((n, capacity_points), dtype=np.float32)
        self._base = np.zeros(n, dtype=np.float64)
        self._newest = np.full(n, -np.inf, dtype=np.float64)
        self._next = np.zeros(n, dtype=np.int64)  # ring position of the next write
        self._count = np.zeros(n, dtype=np.int64)
        self.dropped_out_of_order = 0
        self.dropped_duplicates = 0

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def nbytes(self) -> int:
        arrays = (self._values, self._offsets, self._base, self._newest, self._next, self._count)
        return sum(a.nbytes for a in arrays)

    def index_of(self, key: str) -> int:
        """The row of ``key``, assigning the next free row (and growing the arrays) for a new key."""
        row = self._rows.get(key)
        if row is None:
            row = len(self._rows)
            if row == len(self._base):
                self._grow()
            self._rows[key] = row
        return row

    def _grow(self) -> None:
        """Double the number of rows; copying is amortised over the rows added."""
        n = 2 * len(self._base)

        def grown(a: np.ndarray[Any, Any], fill: float) -> np.ndarray[Any, Any]:
            out = np.full((n, *a.shape[1:]), fill, dtype=a.dtype)
            out[: len(a)] = a
            return out

        self._values, self._offsets = grown(self._values, 0), grown(self._offsets, 0)
        self._base, self._newest = grown(self._base, 0), grown(self._newest, -np.inf)
        self._next, self._count = grown(self._next, 0), grown(self._count, 0)

    def count(self, key: str) -> int:
        row = self._rows.get(key)
        return 0 if row is None else int(self._count[row])

    def window(self, key: str) -> tuple[F64, F64]:
        """Timestamps and values of ``key``, oldest first, as float64; empty arrays for an unknown key."""
        row = self._rows.get(key)
        if row is None:
            return np.empty(0), np.empty(0)
        n = int(self._count[row])
        idx = (int(self._next[row]) - n + np.arange(n)) % self.capacity
        ts = self._base[row] + self._offsets[row, idx].astype(np.float64)
        return ts, self._values[row, idx].astype(np.float64)

    def rows_of(self, keys: list[str]) -> npt.NDArray[np.int64]:
        """Rows of many keys at once (new keys get rows), for the vectorised paths."""
        return np.fromiter((self.index_of(k) for k in keys), dtype=np.int64, count=len(keys))

    def counts(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return self._count[rows]

    def value_matrix(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """The stored values of ``rows`` as an ``[n, capacity]`` copy in ring order, unfilled slots NaN.

        Order-free statistics (median, MAD, quantiles) over many windows at once need no unrolling of the
        ring: a row that is not full yet was written from slot 0, so its slots ``>= count`` are unused."""
        m = self._values[rows]
        partial = self._count[rows] < self.capacity
        if partial.any():
            unused = np.arange(self.capacity)[None, :] >= self._count[rows][partial][:, None]
            sub = m[partial]
            sub[unused] = np.nan
            m[partial] = sub
        return m

    def _rebase(self, rows: npt.NDArray[np.int64], new_base: F64) -> None:
        shift = self._base[rows] - new_base
        self._offsets[rows] = (self._offsets[rows] + shift[:, None]).astype(np.float32)
        self._base[rows] = new_base

    def append(self, key: str, ts: float, value: float) -> None:
        """Add one point; see the module docstring for what is dropped."""
        row = self.index_of(key)
        newest = self._newest[row]
        if not ts > newest:  # also true for a NaN timestamp
            if ts == newest:
                self.dropped_duplicates += 1
            else:
                self.dropped_out_of_order += 1
            return
        if self._count[row] == 0:
            self._base[row] = ts
        elif ts - self._base[row] > self.REBASE_AFTER_S:
            self._rebase(np.array([row]), np.array([ts]))
        pos = int(self._next[row])
        self._values[row, pos] = value
        self._offsets[row, pos] = ts - self._base[row]
        self._next[row] = (pos + 1) % self.capacity
        self._count[row] = min(int(self._count[row]) + 1, self.capacity)
        self._newest[row] = ts

    def append_many(self, rows: npt.ArrayLike, ts: npt.ArrayLike, values: npt.ArrayLike) -> None:
        """Add points to rows from :meth:`index_of`; the same result as calling :meth:`append` for each
        point in order (timestamps equal to within float32 precision), without a Python loop per point."""
        r_in = np.asarray(rows, dtype=np.int64)
        t_in = np.asarray(ts, dtype=np.float64)
        v_in = np.asarray(values, dtype=np.float32)
        if not r_in.shape == t_in.shape == v_in.shape or r_in.ndim != 1:
            raise ValueError("rows, ts and values must be one-dimensional and of equal length")
        if len(r_in) and (r_in.min() < 0 or r_in.max() >= len(self._rows)):
            raise IndexError("row out of range: get rows from index_of()")
        nan = np.isnan(t_in)
        self.dropped_out_of_order += int(nan.sum())
        # Group the points by row, keeping arrival order inside each row (a stable sort).
        order = np.argsort(r_in[~nan], kind="stable")
        r, t, v = r_in[~nan][order], t_in[~nan][order], v_in[~nan][order]
        if len(r) == 0:
            return
        first = np.r_[True, r[1:] != r[:-1]]
        group = np.cumsum(first) - 1
        starts = np.flatnonzero(first)
        n_groups = len(starts)
        # A point is kept if it is newer than every earlier point of its row, stored or in this call: a
        # running maximum that restarts per row. Each row's sequence is prefixed with its stored newest
        # timestamp and timestamps are replaced by ranks offset by row, so one global
        # ``maximum.accumulate`` never carries a value from one row into the next.
        pos = np.arange(len(r)) + group + 1
        seq = np.empty(len(r) + n_groups)
        seq[pos] = t
        seq[starts + np.arange(n_groups)] = self._newest[r[starts]]
        _, rank = np.unique(seq, return_inverse=True)
        seq_group = np.repeat(np.arange(n_groups), np.bincount(group, minlength=n_groups) + 1)
        key = seq_group * (len(seq) + 1) + rank.reshape(-1)
        running = np.maximum.accumulate(key)
        prev = running[pos - 1]
        keep = key[pos] > prev
        dup = key[pos] == prev
        self.dropped_duplicates += int(dup.sum())
        self.dropped_out_of_order += int((~keep & ~dup).sum())
        kr, kt, kv, kg = r[keep], t[keep], v[keep], group[keep]
        if len(kr) == 0:
            return
        counts = np.bincount(kg, minlength=n_groups)
        offset = np.cumsum(counts) - counts
        k = np.arange(len(kr)) - offset[kg]  # index of each kept point among its row's kept points
        touched = np.flatnonzero(counts)
        trows, tcounts = r[starts[touched]], counts[touched]
        newest = kt[offset[touched] + tcounts - 1]
        fresh = self._count[trows] == 0
        self._base[trows[fresh]] = newest[fresh]
        far = ~fresh & (newest - self._base[trows] > self.REBASE_AFTER_S)
        if far.any():
            self._rebase(trows[far], newest[far])
        # Only the last ``capacity`` kept points of a row survive; writing just those keeps every
        # (row, position) pair of the fancy assignment unique, so the result does not depend on the order
        # numpy applies it in.
        last = k >= counts[kg] - self.capacity
        kr, kt, kv, k = kr[last], kt[last], kv[last], k[last]
        slot = (self._next[kr] + k) % self.capacity
        self._values[kr, slot] = kv
        self._offsets[kr, slot] = kt - self._base[kr]
        self._next[trows] = (self._next[trows] + tcounts) % self.capacity
        self._count[trows] = np.minimum(self._count[trows] + tcounts, self.capacity)
        self._newest[trows] = newest
