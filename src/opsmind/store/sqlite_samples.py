"""The :class:`~opsmind.store.protocols.SampleStore` half of :class:`~opsmind.store.sqlite.SqliteStore`:
appends, series listing, range queries over raw points and rollups, and maintenance (rollups, retention).

Timestamps are stored as integer milliseconds; NaN values are stored as NULL (SQLite has no NaN) and
read back as NaN. Callers never see series ids, only :class:`~opsmind.types.Series`. The tables and the
statements are in :mod:`opsmind.store.sqlite_schema`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from opsmind.config import StorageSettings
from opsmind.store.protocols import (
    MaintenanceReport,
    RangeResult,
    Resolution,
    SeriesInfo,
    TooManySeriesError,
    finest_resolution,
    merge_raw,
    raw_result,
    rollup_result,
)
from opsmind.store.sqlite_connections import SqliteConnections
from opsmind.store.sqlite_schema import (
    COMPACT,
    DROP_HEAD,
    EXPIRE_H,
    EXPIRE_M,
    EXPIRE_RAW,
    HEAD_RANGE,
    HOUR_MS,
    INSERT_HEAD,
    INSERT_SERIES,
    LATE,
    MIN_MS,
    RAW_SQL,
    REROLL_H,
    REROLL_M,
    ROLL_H,
    ROLL_M,
    ROLLUP_SQL,
    SAMPLES_RANGE,
    SLICE,
)
from opsmind.types import Series, SeriesSamples
from opsmind.types.series import LABEL_NAME_RE, NAME_LABEL

SLICE_ROWS = 200_000  # points per maintenance transaction: bounds how long an append can wait
_NO_FIRST = np.iinfo(np.int64).max
_NO_LAST = np.iinfo(np.int64).min


class SqliteSamples:
    """Samples (raw, 1-minute and 1-hour rollups, with retention) in the database of ``db``.

    The key -> id map and each series' first and last timestamp are kept in memory, so an append reads
    nothing from the database; they change only under ``db.lock``. :meth:`maintain` also holds a lock of
    its own, so two maintenance runs never interleave their slices while appends still run between them.
    """

    def __init__(self, db: SqliteConnections, settings: StorageSettings, max_series: int) -> None:
        self._db = db
        self._settings = settings
        self._max_series = max_series
        self._maintain_lock = threading.Lock()
        self._ids: dict[str, int] = {}
        # First/last timestamp (ms) per series id, and the values last written to the series table.
        self._first = np.full(1024, _NO_FIRST, dtype=np.int64)
        self._last = np.full(1024, _NO_LAST, dtype=np.int64)
        self._saved_first = self._first.copy()
        self._saved_last = self._last.copy()
        self._load()

    def _load(self) -> None:
        """Fill the key -> id cache and the per-series first/last timestamps from the database."""
        conn = self._db.writer
        rows = conn.execute("SELECT id, key, first_ms, last_ms FROM series").fetchall()
        self._ids = {key: sid for sid, key, _, _ in rows}
        self._next_id = max((r[0] for r in rows), default=0) + 1
        self._grow(self._next_id)
        for sid, _, first, last in rows:
            if first is not None:
                self._first[sid] = self._saved_first[sid] = first
                self._last[sid] = self._saved_last[sid] = last
        # Points appended since the last maintenance are only in head.
        for sid, first, last in conn.execute("SELECT series_id, min(ts_ms), max(ts_ms) FROM head GROUP BY 1"):
            if sid < self._next_id:
                self._first[sid] = min(int(self._first[sid]), first)
                self._last[sid] = max(int(self._last[sid]), last)
        newest = int(self._last.max())
        self._newest_ms: int | None = None if newest == _NO_LAST else newest
        maintained = conn.execute("SELECT value FROM meta WHERE name = 'maintained_at'").fetchone()
        self._maintained_ms: int | None = None if maintained is None else int(maintained[0])

    def _grow(self, size: int) -> None:
        """Keep the arrays indexed by series id at least ``size`` long, doubling their capacity."""
        old = len(self._first)
        if size <= old:
            return
        cap = max(size, 2 * old)
        for name, fill in (("_first", _NO_FIRST), ("_last", _NO_LAST)):
            for attr in (name, "_saved" + name):
                grown = np.full(cap, fill, dtype=np.int64)
                grown[:old] = getattr(self, attr)
                setattr(self, attr, grown)

    def append(self, batch: Sequence[SeriesSamples]) -> int:
        """Store every point of ``batch`` in one transaction; see :meth:`SampleStore.append`.

        Raises :class:`TooManySeriesError` before writing if the new series would exceed ``max_series``
        and :class:`ValueError` for a series with unequal timestamp and value counts or a non-finite
        timestamp."""
        with self._db.lock:
            ids = self._ids
            sids: list[int] = []
            stamps: list[float] = []
            values: list[float] = []
            pending: dict[str, int] = {}
            new_rows: list[tuple[int, str, str, str]] = []
            next_id = self._next_id
            # The only per-series Python work: the id lookup and extending three flat lists.
            for item in batch:
                n = len(item.timestamps)
                if n != len(item.values):
                    raise ValueError(f"{item.series.key}: {n} timestamps but {len(item.values)} values")
                if n == 0:
                    continue
                key = item.series.key
                sid = ids.get(key)
                if sid is None:
                    sid = pending.get(key)
                    if sid is None:
                        sid = pending[key] = next_id
                        next_id += 1
                        labels = json.dumps(dict(item.series.labels), separators=(",", ":"))
                        new_rows.append((sid, key, item.series.name, labels))
                if n == 1:
                    sids.append(sid)
                else:
                    sids.extend([sid] * n)
                stamps.extend(item.timestamps)
                values.extend(item.values)
            if not sids:
                return 0
            if len(ids) + len(new_rows) > self._max_series:
                raise TooManySeriesError(
                    f"batch adds {len(new_rows)} series to {len(ids)}; the limit is {self._max_series}"
                )
            ts_arr = np.asarray(stamps, dtype=np.float64)
            if not np.isfinite(ts_arr).all():
                raise ValueError("timestamps must be finite")
            ts_ms = np.rint(ts_arr * 1000.0).astype(np.int64)
            sid_arr = np.asarray(sids, dtype=np.int64)
            if len(ts_ms) > 1 and not (ts_ms[1:] >= ts_ms[:-1]).all():
                # Insert in head's key order so the B-tree is appended to rather than split in the middle;
                # the sort is stable, so of two points with the same series and time the later still wins.
                order = np.lexsort((sid_arr, ts_ms))
                cols = (ts_ms[order].tolist(), sid_arr[order].tolist(), np.asarray(values)[order].tolist())
            else:
                cols = (ts_ms.tolist(), sids, values)
            with self._db.transaction() as conn:
                conn.executemany(INSERT_SERIES, new_rows)
                conn.executemany(INSERT_HEAD, zip(*cols, strict=True))
            ids.update(pending)
            self._next_id = next_id
            self._grow(next_id)
            np.minimum.at(self._first, sid_arr, ts_ms)
            np.maximum.at(self._last, sid_arr, ts_ms)
            newest = int(ts_ms.max())
            self._newest_ms = newest if self._newest_ms is None else max(self._newest_ms, newest)
            return len(sids)

    def series_count(self) -> int:
        return len(self._ids)

    def series(self, matchers: Mapping[str, str] | None = None, limit: int = 1000) -> list[SeriesInfo]:
        """Series whose labels equal every matcher, ordered by key. A matcher with an empty value matches
        series without that label, as in Prometheus."""
        where: list[str] = []
        params: list[Any] = []
        for name, value in (matchers or {}).items():
            if name == NAME_LABEL:
                where.append("name = ?")
                params.append(value)
            elif LABEL_NAME_RE.match(name):
                where.append("coalesce(json_extract(labels, ?), '') = ?")
                params += [f'$."{name}"', value]
            elif value != "":
                return []  # no stored series can carry a label with an invalid name
        sql = "SELECT id, key, name, labels FROM series"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._db.reader() as conn:
            rows = conn.execute(sql + " ORDER BY key LIMIT ?", [*params, limit]).fetchall()
        oldest = self._oldest_retained_ms()
        out = []
        for sid, key, name, labels in rows:
            first = int(self._first[sid]) if sid < len(self._first) else _NO_FIRST
            last = int(self._last[sid]) if sid < len(self._last) else _NO_LAST
            series = Series(name, tuple(json.loads(labels).items()), key=key)
            if last == _NO_LAST:
                out.append(SeriesInfo(series, None, None))
            else:
                # The first point ever appended, raised to what retention keeps; a series appended only
                # points already past retention (deleted at the next maintenance) shows them as they are,
                # not a first_ts after its last_ts.
                shown = max(first, oldest) if last >= oldest else first
                out.append(SeriesInfo(series, shown / 1000.0, last / 1000.0))
        return out

    def _oldest_retained_ms(self) -> int:
        """Start of the oldest hour bucket the last maintenance kept: no point older than it is stored."""
        if self._maintained_ms is None:
            return _NO_LAST
        return (self._maintained_ms - round(self._settings.hour_retention_s * 1000)) // HOUR_MS * HOUR_MS

    def resolve(self, start: float) -> Literal["raw", "1m", "1h"]:
        """The finest resolution whose retention still covers ``start``; see :func:`finest_resolution`."""
        return finest_resolution(start, self._newest_ms, self._maintained_ms, self._settings)

    def query(self, series: Series, start: float, end: float, resolution: Resolution = "auto") -> RangeResult:
        """Points of ``series`` with ``start <= ts <= end``, oldest first; see :meth:`SampleStore.query`.

        Rollup buckets are returned when they overlap ``[start, end]``, stamped with their start, so the
        first bucket may start before ``start``. A point written into a minute that maintenance already
        rolled up shows in raw results at once and in rollups after the next :meth:`maintain`."""
        res = self.resolve(start) if resolution == "auto" else resolution
        sid = self._ids.get(series.key)
        if sid is None:
            return RangeResult(series, res, [], [])
        a, b = round(start * 1000), round(end * 1000)
        if res == "raw":
            with self._db.reader() as conn:
                rows = conn.execute(RAW_SQL, {"sid": sid, "a": a, "b": b}).fetchall()
            return raw_result(series, rows)
        width = MIN_MS if res == "1m" else HOUR_MS
        params = {"sid": sid, "a": a // width * width, "b": b}
        with self._db.reader() as conn:
            rows = conn.execute(ROLLUP_SQL[width], params).fetchall()
        return rollup_result(series, res, rows)

    def query_raw_many(self, series: Sequence[Series], start: float, end: float) -> list[RangeResult]:
        """Raw points of each of ``series``, in order; see :meth:`SampleStore.query_raw_many`.

        ``head`` is read before ``samples``: maintenance only moves points from the first to the second,
        so a point it moves in between is read twice (merged), never missed."""
        ids = [self._ids.get(s.key) for s in series]
        wanted = {sid for sid in ids if sid is not None}
        a, b = round(start * 1000), round(end * 1000)
        head: dict[int, dict[int, float | None]] = {}
        out: list[RangeResult] = []
        with self._db.reader() as conn:
            if wanted:
                for sid, ts, value in conn.execute(HEAD_RANGE, {"a": a, "b": b}):
                    if sid in wanted:
                        head.setdefault(sid, {})[ts] = value
            for s, sid in zip(series, ids, strict=True):
                if sid is None:
                    out.append(RangeResult(s, "raw", [], []))
                    continue
                stored = conn.execute(SAMPLES_RANGE, {"sid": sid, "a": a, "b": b}).fetchall()
                out.append(merge_raw(s, stored, head.get(sid)))
        return out

    def maintain(self, now: float) -> MaintenanceReport:
        """Roll up complete minutes and hours, move rolled-up raw points to ``samples``, apply retention and
        forget series that have no data left.

        The work runs as a series of short transactions (each leaves the store consistent), so appends
        wait at most for one slice of about ``SLICE_ROWS`` points, never for the whole backlog. Points
        that arrive for a minute already rolled up are folded in by recomputing that minute and its hour,
        unless the bucket already lost part of its raw data to retention."""
        st = self._settings
        now_ms = round(now * 1000)
        p: dict[str, int] = {"M": MIN_MS, "H": HOUR_MS, "now": now_ms}
        p["raw_cut"] = now_ms - round(st.raw_retention_s * 1000)
        p["min_cut"] = now_ms - round(st.minute_retention_s * 1000)
        p["hour_cut"] = now_ms - round(st.hour_retention_s * 1000)
        p["series_cut"] = p["hour_cut"] // HOUR_MS * HOUR_MS
        target = now_ms // MIN_MS * MIN_MS
        minutes = hours = deleted_raw = 0
        with self._maintain_lock:
            with self._db.lock, self._db.transaction() as c:
                p.update(self._watermarks(c))
                c.execute("DELETE FROM temp.late")
                c.execute(LATE, p)
                c.execute(COMPACT, {**p, "end": p["wm_m"]})
                c.execute(DROP_HEAD, {**p, "end": p["wm_m"]})
                minutes += c.execute(REROLL_M, p).rowcount
                hours += c.execute(REROLL_H, p).rowcount
            while p["wm_m"] < target:
                with self._db.lock, self._db.transaction() as c:
                    p.update(self._watermarks(c))
                    row = c.execute(SLICE, {**p, "n": SLICE_ROWS}).fetchone()
                    # Whole minutes, at least one, so that a slice makes progress however dense it is.
                    end = target if row is None else max(row[0] // MIN_MS * MIN_MS, p["wm_m"] + MIN_MS)
                    end = min(end, target)
                    p.update(end=end, end_h=max(p["wm_h"], end // HOUR_MS * HOUR_MS))
                    minutes += c.execute(ROLL_M, p).rowcount
                    c.execute(COMPACT, p)
                    c.execute(DROP_HEAD, p)
                    hours += c.execute(ROLL_H, p).rowcount
                    c.execute("INSERT OR REPLACE INTO meta VALUES ('wm_1m', :end), ('wm_1h', :end_h)", p)
                    p.update(wm_m=end, wm_h=p["end_h"])
            with self._db.lock:
                with self._db.transaction() as c:
                    changed = self._persist_spans(c)
                    # Late points written since the first step could belong to a series expired below.
                    deleted_raw += c.execute("DELETE FROM head WHERE ts_ms < :raw_cut", p).rowcount
                    deleted_raw += c.execute(EXPIRE_RAW, p).rowcount
                    deleted_minutes = c.execute(EXPIRE_M, p).rowcount
                    deleted_hours = c.execute(EXPIRE_H, p).rowcount
                    gone = c.execute("DELETE FROM series WHERE last_ms < :series_cut RETURNING id, key", p)
                    gone_rows = gone.fetchall()
                    c.execute("INSERT OR REPLACE INTO meta VALUES ('maintained_at', :now)", p)
                self._saved_first[changed] = self._first[changed]
                self._saved_last[changed] = self._last[changed]
                for sid, key in gone_rows:
                    del self._ids[key]
                    self._first[sid] = self._saved_first[sid] = _NO_FIRST
                    self._last[sid] = self._saved_last[sid] = _NO_LAST
                self._maintained_ms = max(now_ms, self._maintained_ms or now_ms)
        return MaintenanceReport(minutes, hours, deleted_raw, deleted_minutes, deleted_hours)

    @staticmethod
    def _watermarks(c: sqlite3.Connection) -> dict[str, int]:
        rows = dict(c.execute("SELECT name, value FROM meta WHERE name IN ('wm_1m', 'wm_1h')").fetchall())
        return {"wm_m": rows["wm_1m"], "wm_h": rows["wm_1h"]}

    def _persist_spans(self, c: sqlite3.Connection) -> np.ndarray[Any, np.dtype[np.intp]]:
        """Write first/last timestamps that changed since the last call; return the ids written."""
        changed = np.flatnonzero((self._first != self._saved_first) | (self._last != self._saved_last))
        rows = zip(self._first[changed].tolist(), self._last[changed].tolist(), changed.tolist(), strict=True)
        c.executemany("UPDATE series SET first_ms = ?, last_ms = ? WHERE id = ?", rows)
        return changed
