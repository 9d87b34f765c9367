"""The embedded backend: :class:`SqliteStore` keeps samples, rollups and events in one SQLite file.

The layout is chosen for ingest speed. New raw points go to ``head``, keyed by ``(ts_ms, series_id)``:
a remote-write batch (thousands of series, one point each) then lands at the right edge of one B-tree and
a commit dirties a handful of pages. Keyed by series first, the same batch dirties one page per series
and measured 5-20 times slower. ``maintain`` rolls complete minutes up from ``head`` into ``rollup_1m``
and only then moves those rows into ``samples``, keyed by ``(series_id, ts_ms)`` so reading one series is
one index range. So ``head`` holds exactly the minutes not rolled up yet (plus late arrivals), and a
query aggregates those on the fly: every resolution sees every acknowledged point.

Timestamps are stored as integer milliseconds; NaN values are stored as NULL (SQLite has no NaN) and
read back as NaN. Callers never see series ids, only :class:`~opsmind.types.Series`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

from opsmind.config import StorageSettings
from opsmind.store.protocols import (
    EventStore,
    MaintenanceReport,
    R,
    RangeResult,
    Resolution,
    SampleStore,
    SeriesInfo,
    TooManySeriesError,
)
from opsmind.types import Record, Series, SeriesSamples
from opsmind.types.series import LABEL_NAME_RE, NAME_LABEL

MIN_MS = 60_000
HOUR_MS = 3_600_000
BUSY_TIMEOUT_MS = 10_000
SLICE_ROWS = 200_000  # points per maintenance transaction: bounds how long an append can wait
_NO_FIRST = np.iinfo(np.int64).max
_NO_LAST = np.iinfo(np.int64).min
_WM_M = "(SELECT value FROM meta WHERE name = 'wm_1m')"
_WM_H = "(SELECT value FROM meta WHERE name = 'wm_1h')"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series(id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
    labels TEXT NOT NULL, first_ms INTEGER, last_ms INTEGER);
CREATE INDEX IF NOT EXISTS series_name ON series(name);
CREATE TABLE IF NOT EXISTS head(ts_ms INTEGER NOT NULL, series_id INTEGER NOT NULL, value REAL,
    PRIMARY KEY(ts_ms, series_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS samples(series_id INTEGER NOT NULL, ts_ms INTEGER NOT NULL, value REAL,
    PRIMARY KEY(series_id, ts_ms)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_1m(series_id INTEGER NOT NULL, bucket_start INTEGER NOT NULL,
    count INTEGER NOT NULL, sum REAL, min REAL, max REAL, PRIMARY KEY(series_id, bucket_start)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rollup_1m_time ON rollup_1m(bucket_start);
CREATE TABLE IF NOT EXISTS rollup_1h(series_id INTEGER NOT NULL, bucket_start INTEGER NOT NULL,
    count INTEGER NOT NULL, sum REAL, min REAL, max REAL, PRIMARY KEY(series_id, bucket_start)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rollup_1h_time ON rollup_1h(bucket_start);
CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta VALUES ('wm_1m', 0), ('wm_1h', 0);
CREATE TABLE IF NOT EXISTS events(kind TEXT NOT NULL, id TEXT NOT NULL, at REAL NOT NULL, service TEXT,
    status TEXT, body TEXT NOT NULL, PRIMARY KEY(kind, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_at ON events(kind, at);
CREATE INDEX IF NOT EXISTS events_service ON events(kind, service, at);
CREATE INDEX IF NOT EXISTS events_status ON events(kind, status, at);
"""

_INSERT_SERIES = "INSERT INTO series(id, key, name, labels) VALUES (?, ?, ?, ?)"
_INSERT_HEAD = "INSERT OR REPLACE INTO head(ts_ms, series_id, value) VALUES (?, ?, ?)"
_PUT_EVENT = "INSERT OR REPLACE INTO events(kind, id, at, service, status, body) VALUES (?, ?, ?, ?, ?, ?)"
_RAW_SQL = """
SELECT ts_ms, value FROM head WHERE ts_ms BETWEEN :a AND :b AND series_id = :sid
UNION ALL
SELECT ts_ms, value FROM samples AS s WHERE series_id = :sid AND ts_ms BETWEEN :a AND :b
    AND NOT EXISTS (SELECT 1 FROM head AS h WHERE h.ts_ms = s.ts_ms AND h.series_id = :sid)
ORDER BY ts_ms
"""

# maintain(): ``temp.late`` holds (series, minute) pairs whose points arrived after the minute was rolled up.
_LATE = (
    "INSERT INTO temp.late SELECT DISTINCT series_id, ts_ms / :M * :M FROM head"
    " WHERE ts_ms < :wm_m AND ts_ms / :M * :M >= :raw_cut"
)
_SLICE = "SELECT ts_ms FROM head WHERE ts_ms >= :wm_m ORDER BY ts_ms LIMIT 1 OFFSET :n"
_ROLL_M = (
    "INSERT OR REPLACE INTO rollup_1m SELECT series_id, ts_ms / :M * :M AS b, count(value), sum(value),"
    " min(value), max(value) FROM head WHERE ts_ms >= :wm_m AND ts_ms < :end GROUP BY series_id, b"
)
# Sorted by samples' key so each series' rows are appended to its own pages in one pass.
_COMPACT = (
    "INSERT OR REPLACE INTO samples SELECT series_id, ts_ms, value FROM head WHERE ts_ms < :end"
    " ORDER BY series_id, ts_ms"
)
_DROP_HEAD = "DELETE FROM head WHERE ts_ms < :end"
_REROLL_M = (
    "INSERT OR REPLACE INTO rollup_1m SELECT l.series_id, l.b, count(s.value), sum(s.value), min(s.value),"
    " max(s.value) FROM temp.late AS l JOIN samples AS s ON s.series_id = l.series_id AND s.ts_ms >= l.b"
    " AND s.ts_ms < l.b + :M GROUP BY l.series_id, l.b"
)
_ROLL_H = (
    "INSERT OR REPLACE INTO rollup_1h SELECT series_id, bucket_start / :H * :H AS b, sum(count), sum(sum),"
    " min(min), max(max) FROM rollup_1m WHERE bucket_start >= :wm_h AND bucket_start < :end_h"
    " GROUP BY series_id, b"
)
# Only hours whose minutes are all still retained can be recomputed from them.
_REROLL_H = (
    "INSERT OR REPLACE INTO rollup_1h SELECT m.series_id, h.b, sum(m.count), sum(m.sum), min(m.min),"
    " max(m.max) FROM (SELECT DISTINCT series_id, b / :H * :H AS b FROM temp.late WHERE b < :wm_h"
    " AND b / :H * :H >= :min_cut) AS h JOIN rollup_1m AS m ON m.series_id = h.series_id"
    " AND m.bucket_start >= h.b AND m.bucket_start < h.b + :H GROUP BY m.series_id, h.b"
)
# One index range per series: samples is keyed by series first, so a bare time filter would scan it all.
_EXPIRE_RAW = "DELETE FROM samples WHERE series_id IN (SELECT id FROM series) AND ts_ms < :raw_cut"
# A bucket goes once all of it is older than the cut.
_EXPIRE_M = "DELETE FROM rollup_1m WHERE bucket_start <= :min_cut - :M"
_EXPIRE_H = "DELETE FROM rollup_1h WHERE bucket_start <= :hour_cut - :H"


def _rollup_sql(width: int) -> str:
    """Buckets of ``width`` ms for one series: stored rollups plus, for the part not rolled up yet,
    aggregates computed from the finer level (minute rollups, then raw ``head`` rows)."""
    table = "rollup_1m" if width == MIN_MS else "rollup_1h"
    parts = [
        f"SELECT bucket_start AS b, count AS c, sum AS s, min AS lo, max AS hi FROM {table}"
        " WHERE series_id = :sid AND bucket_start BETWEEN :a AND :b"
    ]
    if width == HOUR_MS:
        parts.append(
            f"SELECT bucket_start / {width} * {width}, count, sum, min, max FROM rollup_1m"
            f" WHERE series_id = :sid AND bucket_start >= max(:a, {_WM_H}) AND bucket_start <= :b"
        )
    parts.append(
        f"SELECT ts_ms / {width} * {width}, value IS NOT NULL, value, value, value FROM head"
        f" WHERE ts_ms >= max(:a, {_WM_M}) AND ts_ms <= :b AND series_id = :sid"
    )
    union = " UNION ALL ".join(parts)
    return f"SELECT b, sum(c), sum(s), min(lo), max(hi) FROM ({union}) GROUP BY b ORDER BY b"


_ROLLUP_SQL = {MIN_MS: _rollup_sql(MIN_MS), HOUR_MS: _rollup_sql(HOUR_MS)}


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


class SqliteStore:
    """Samples (raw, 1-minute and 1-hour rollups, with retention) and events in one SQLite database.

    Safe to share between threads: writes go through one connection behind a lock; reads of a file
    database use a pool of separate connections, which WAL lets run while a write is in progress.
    ``":memory:"`` keeps everything in one connection (other connections would see another database).

    Both protocols name their read method ``query``; :meth:`query` dispatches on its first argument, and
    :meth:`query_range` and :meth:`query_events` are the unambiguous spellings.
    """

    def __init__(
        self, path: str, settings: StorageSettings | None = None, max_series: int = 1_000_000
    ) -> None:
        self._path = path
        self._settings = settings or StorageSettings()
        self._max_series = max_series
        self._memory = path == ":memory:"
        self._lock = threading.Lock()
        self._maintain_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._pool: list[sqlite3.Connection] = []
        self._closed = False
        self._conn = self._connect()
        if not self._memory:
            # WAL with synchronous=NORMAL writes a transaction's pages to the WAL file before COMMIT
            # returns and fsyncs only at checkpoints: a committed transaction survives kill -9 of this
            # process (the data is in the OS page cache); only an OS crash or power loss may lose the last
            # transactions, and the database stays consistent even then.
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.executescript(_SCHEMA)
        self._conn.execute("CREATE TEMP TABLE late(series_id INTEGER, b INTEGER, PRIMARY KEY(series_id, b))")
        self._ids: dict[str, int] = {}
        # First/last timestamp (ms) per series id, and the values last written to the series table.
        self._first = np.full(1024, _NO_FIRST, dtype=np.int64)
        self._last = np.full(1024, _NO_LAST, dtype=np.int64)
        self._saved_first = self._first.copy()
        self._saved_last = self._last.copy()
        self._load()

    # -- connections -------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA cache_size = -16384")  # 16 MiB: the hot right edge of head and the indexes
        conn.execute("PRAGMA temp_store = MEMORY")  # GROUP BY and ORDER BY sorts in maintain()
        return conn

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise RuntimeError("store is closed")
        if self._memory:
            with self._lock:
                yield self._conn
            return
        with self._pool_lock:
            conn = self._pool.pop() if self._pool else None
        conn = conn or self._connect()
        try:
            yield conn
        finally:
            with self._pool_lock:
                if self._closed:
                    conn.close()
                else:
                    self._pool.append(conn)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, rolled back entirely on any error. The caller holds ``self._lock``."""
        if self._closed:
            raise RuntimeError("store is closed")
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock, self._pool_lock:
            if self._closed:
                return
            self._closed = True
            for conn in self._pool:
                conn.close()
            self._pool.clear()
            self._conn.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- in-memory series state --------------------------------------------------------------------

    def _load(self) -> None:
        """Fill the key -> id cache and the per-series first/last timestamps from the database."""
        conn = self._conn
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

    # -- SampleStore -------------------------------------------------------------------------------

    def append(self, batch: Sequence[SeriesSamples]) -> int:
        """Store every point of ``batch`` in one transaction; see :meth:`SampleStore.append`.

        Raises :class:`TooManySeriesError` before writing if the new series would exceed ``max_series``
        and :class:`ValueError` for a series with unequal timestamp and value counts or a non-finite
        timestamp."""
        with self._lock:
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
            with self._transaction() as conn:
                conn.executemany(_INSERT_SERIES, new_rows)
                conn.executemany(_INSERT_HEAD, zip(*cols, strict=True))
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
        with self._reader() as conn:
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
                out.append(SeriesInfo(series, max(first, oldest) / 1000.0, last / 1000.0))
        return out

    def _oldest_retained_ms(self) -> int:
        """Start of the oldest hour bucket the last maintenance kept: no point older than it is stored."""
        if self._maintained_ms is None:
            return _NO_LAST
        return (self._maintained_ms - round(self._settings.hour_retention_s * 1000)) // HOUR_MS * HOUR_MS

    def resolve(self, start: float) -> Literal["raw", "1m", "1h"]:
        """The finest resolution whose retention still covers ``start``.

        "Now" is the newest stored timestamp or the time of the last :meth:`maintain`, whichever is later,
        not the wall clock: a store fed with simulated or replayed time then chooses the same way as a live
        one. An empty, never maintained store uses ``time.time()``."""
        refs = [r for r in (self._newest_ms, self._maintained_ms) if r is not None]
        now = max(refs) / 1000.0 if refs else time.time()
        if start >= now - self._settings.raw_retention_s:
            return "raw"
        if start >= now - self._settings.minute_retention_s:
            return "1m"
        return "1h"

    def query_range(
        self, series: Series, start: float, end: float, resolution: Resolution = "auto"
    ) -> RangeResult:
        """:meth:`SampleStore.query`. Rollup buckets are returned when they overlap ``[start, end]``,
        stamped with their start, so the first bucket may start before ``start``. A point written into a
        minute that maintenance already rolled up shows in raw results at once and in rollups after the
        next :meth:`maintain`."""
        res = self.resolve(start) if resolution == "auto" else resolution
        sid = self._ids.get(series.key)
        if sid is None:
            return RangeResult(series, res, [], [])
        a, b = round(start * 1000), round(end * 1000)
        if res == "raw":
            with self._reader() as conn:
                rows = conn.execute(_RAW_SQL, {"sid": sid, "a": a, "b": b}).fetchall()
            return RangeResult(series, res, [t / 1000.0 for t, _ in rows], [_nan(v) for _, v in rows])
        width = MIN_MS if res == "1m" else HOUR_MS
        params = {"sid": sid, "a": a // width * width, "b": b}
        with self._reader() as conn:
            rows = conn.execute(_ROLLUP_SQL[width], params).fetchall()
        return RangeResult(
            series,
            res,
            timestamps=[r[0] / 1000.0 for r in rows],
            values=[r[2] / r[1] if r[1] and r[2] is not None else float("nan") for r in rows],
            minimums=[_nan(r[3]) for r in rows],
            maximums=[_nan(r[4]) for r in rows],
            counts=[r[1] for r in rows],
        )

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
            with self._lock, self._transaction() as c:
                p.update(self._watermarks(c))
                c.execute("DELETE FROM temp.late")
                c.execute(_LATE, p)
                c.execute(_COMPACT, {**p, "end": p["wm_m"]})
                c.execute(_DROP_HEAD, {**p, "end": p["wm_m"]})
                minutes += c.execute(_REROLL_M, p).rowcount
                hours += c.execute(_REROLL_H, p).rowcount
            while p["wm_m"] < target:
                with self._lock, self._transaction() as c:
                    p.update(self._watermarks(c))
                    row = c.execute(_SLICE, {**p, "n": SLICE_ROWS}).fetchone()
                    # Whole minutes, at least one, so that a slice makes progress however dense it is.
                    end = target if row is None else max(row[0] // MIN_MS * MIN_MS, p["wm_m"] + MIN_MS)
                    end = min(end, target)
                    p.update(end=end, end_h=max(p["wm_h"], end // HOUR_MS * HOUR_MS))
                    minutes += c.execute(_ROLL_M, p).rowcount
                    c.execute(_COMPACT, p)
                    c.execute(_DROP_HEAD, p)
                    hours += c.execute(_ROLL_H, p).rowcount
                    c.execute("INSERT OR REPLACE INTO meta VALUES ('wm_1m', :end), ('wm_1h', :end_h)", p)
                    p.update(wm_m=end, wm_h=p["end_h"])
            with self._lock:
                with self._transaction() as c:
                    changed = self._persist_spans(c)
                    # Late points written since the first step could belong to a series expired below.
                    deleted_raw += c.execute("DELETE FROM head WHERE ts_ms < :raw_cut", p).rowcount
                    deleted_raw += c.execute(_EXPIRE_RAW, p).rowcount
                    deleted_minutes = c.execute(_EXPIRE_M, p).rowcount
                    deleted_hours = c.execute(_EXPIRE_H, p).rowcount
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

    # -- EventStore --------------------------------------------------------------------------------

    def put(self, record: Record) -> None:
        row = (
            record.kind,
            record.id,
            record.at,
            record.service,
            record.status_value,
            record.model_dump_json(),
        )
        with self._lock, self._transaction() as conn:
            conn.execute(_PUT_EVENT, row)

    def get(self, cls: type[R], record_id: str) -> R | None:
        with self._reader() as conn:
            row = conn.execute(
                "SELECT body FROM events WHERE kind = ?1 AND id = ?2", (cls.kind, record_id)
            ).fetchone()
        return None if row is None else cls.model_validate_json(row[0])

    def query_events(
        self,
        cls: type[R],
        *,
        service: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        newest_first: bool = True,
    ) -> list[R]:
        """:meth:`EventStore.query`: ``since <= at <= until``, ties on ``at`` broken by id."""
        where: list[str] = ["kind = ?"]
        params: list[Any] = [cls.kind]
        for column, op, value in (("service", "=", service), ("status", "=", status)):
            if value is not None:
                where.append(f"{column} {op} ?")
                params.append(str(value))
        for op, bound in ((">=", since), ("<=", until)):
            if bound is not None:
                where.append(f"at {op} ?")
                params.append(bound)
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT body FROM events WHERE {' AND '.join(where)} ORDER BY at {order}, id {order} LIMIT ?"
        with self._reader() as conn:
            rows = conn.execute(sql, [*params, limit]).fetchall()
        return [cls.model_validate_json(body) for (body,) in rows]

    # -- the one ``query`` both protocols name ------------------------------------------------------

    @overload
    def query(
        self, series: Series, start: float, end: float, resolution: Resolution = "auto"
    ) -> RangeResult: ...

    @overload
    def query(
        self,
        cls: type[R],
        *,
        service: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        newest_first: bool = True,
    ) -> list[R]: ...

    def query(self, *args: Any, **kwargs: Any) -> RangeResult | list[Any]:
        """Both protocols call their read method ``query``: a :class:`Series` first argument means
        :meth:`query_range`, a record class means :meth:`query_events`."""
        first = args[0] if args else kwargs.pop("series", None) or kwargs.pop("cls", None)
        rest = args[1:]
        if isinstance(first, Series):
            return self.query_range(first, *rest, **kwargs)
        if isinstance(first, type) and issubclass(first, Record):
            return self.query_events(first, *rest, **kwargs)
        raise TypeError(f"query() needs a Series or a Record class, got {first!r}")


if TYPE_CHECKING:

    def _implements_protocols(store: SqliteStore) -> tuple[SampleStore, EventStore]:
        return store, store
