"""How an append turns a batch into rows for :class:`~opsmind.store.postgres.PostgresStore`: flat per-point
lists, then ``head`` rows in COPY's binary format.

COPY is the fastest way into PostgreSQL, and its binary format lets numpy lay out a whole batch at once:
under a millisecond for a remote-write batch of 10,000 series. Measured on such batches, COPY straight
into ``head`` took a quarter of the time of ``executemany`` (even pipelined) or of one INSERT from
``unnest`` of array parameters, and a third of COPY into a staging table then INSERT ... ON CONFLICT.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from opsmind.types import Series, SeriesSamples

Int64Array = np.ndarray[Any, np.dtype[np.int64]]
Float64Array = np.ndarray[Any, np.dtype[np.float64]]

# COPY's binary format: a fixed header, then per row a field count and each field as its length and its
# big-endian bytes, then -1. Every head row is three 8-byte fields: one numpy record.
_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
_TRAILER = b"\xff\xff"
_ROW = np.dtype(
    [
        ("n", ">i2"),
        ("ts_len", ">i4"),
        ("ts", ">i8"),
        ("sid_len", ">i4"),
        ("sid", ">i8"),
        ("v_len", ">i4"),
        ("v", ">f8"),
    ]
)


def copy_rows(ts_ms: Int64Array, sids: Int64Array, values: Float64Array) -> bytes:
    """``head`` rows in COPY's binary format; a NaN value is written as NULL (length -1, no bytes)."""
    rows = np.empty(len(ts_ms), dtype=_ROW)
    rows["n"] = 3
    rows["ts_len"] = rows["sid_len"] = rows["v_len"] = 8
    rows["ts"], rows["sid"], rows["v"] = ts_ms, sids, values
    null = np.isnan(values)
    if not null.any():
        return _HEADER + rows.tobytes() + _TRAILER
    rows["v_len"][null] = -1
    raw = rows.view(np.uint8).reshape(len(rows), _ROW.itemsize)
    keep = np.ones(raw.shape, dtype=bool)
    keep[null, -8:] = False  # a NULL field has no value bytes
    return _HEADER + raw[keep].tobytes() + _TRAILER


class FlatBatch:
    """A batch as flat per-point lists: the series id (cached ids from ``ids``; -1, -2, ... for the
    series in ``pending``, not cached), the timestamp and the value. The only per-series Python work is
    here: one dict lookup and extending three lists, as in the SQLite store."""

    __slots__ = ("pending", "sids", "stamps", "values")

    def __init__(self, batch: Sequence[SeriesSamples], ids: Mapping[str, int]) -> None:
        self.sids: list[int] = []
        self.stamps: list[float] = []
        self.values: list[float] = []
        self.pending: list[Series] = []
        placeholders: dict[str, int] = {}
        for item in batch:
            n = len(item.timestamps)
            if n != len(item.values):
                raise ValueError(f"{item.series.key}: {n} timestamps but {len(item.values)} values")
            if n == 0:
                continue
            key = item.series.key
            sid = ids.get(key)
            if sid is None:
                sid = placeholders.get(key)
                if sid is None:
                    self.pending.append(item.series)
                    sid = placeholders[key] = -len(self.pending)
            if n == 1:
                self.sids.append(sid)
            else:
                self.sids.extend([sid] * n)
            self.stamps.extend(item.timestamps)
            self.values.extend(item.values)
