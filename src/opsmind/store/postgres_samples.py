"""The :class:`~opsmind.store.protocols.SampleStore` half of :class:`~opsmind.store.postgres.PostgresStore`:
appends, series listing and range queries. Maintenance is in :mod:`opsmind.store.postgres_maintain`.

Timestamps are stored as integer milliseconds and NaN values as NULL, read back as NaN, as in SQLite.
Callers never see series ids, only :class:`~opsmind.types.Series`; reads look a series up by its key in
the same statement, so they always see the ids that the database holds now.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import psycopg
from psycopg import Connection
from psycopg.rows import TupleRow

from opsmind.config import StorageSettings
from opsmind.store.postgres_batch import FlatBatch, Float64Array, Int64Array, copy_rows
from opsmind.store.postgres_connections import PostgresConnections, scalar
from opsmind.store.postgres_maintain import PostgresMaintenance
from opsmind.store.postgres_schema import (
    ADD_COUNT,
    COPY_HEAD,
    COPY_STAGE,
    EPOCH,
    FIND_SERIES,
    GATE_SHARED,
    HEAD_RANGE,
    HOUR_MS,
    IDS_BY_KEY,
    INSERT_SERIES,
    LOCK_COUNT,
    MIN_MS,
    RAW_SQL,
    ROLLUP_SQL,
    SAMPLES_RANGE,
    SERIES_COUNT,
    SERIES_PAGE,
    STAGE,
    STATE,
    UPSERT_HEAD,
)
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
from opsmind.types import Series, SeriesSamples
from opsmind.types.series import LABEL_NAME_RE, NAME_LABEL


class PostgresSamples:
    """Samples (raw, 1-minute and 1-hour rollups, with retention) in the schema of ``db``.

    Series ids are cached per process (key -> id) so that an append sends ids, not keys. Maintenance in
    any process may delete a series whose data all expired, and the id of a series appended again later
    is a new one; such deletions bump ``epoch`` in ``meta``, under the write gate that appends hold
    shared, so an append that reads the epoch its cache was filled under may trust the cache until it
    commits. On any other epoch the cache is dropped and ids are looked up again.
    """

    def __init__(self, db: PostgresConnections, settings: StorageSettings, max_series: int) -> None:
        self._db = db
        self._settings = settings
        self._max_series = max_series
        self._maintenance = PostgresMaintenance(db, settings)
        self._cache_lock = threading.Lock()
        self._ids: dict[str, int] = {}
        with db.connection() as c:
            self._epoch = int(scalar(c, EPOCH))  # the epoch _ids is filled under

    def append(self, batch: Sequence[SeriesSamples]) -> int:
        """Store every point of ``batch`` in one transaction; see :meth:`SampleStore.append`.

        Raises :class:`TooManySeriesError` before writing if the new series would exceed ``max_series``
        and :class:`ValueError` for a series with unequal timestamp and value counts or a non-finite
        timestamp (checked in that order, as SQLite does)."""
        with self._cache_lock:
            ids, cached_epoch = self._ids, self._epoch
        flat = FlatBatch(batch, ids)
        if not flat.sids:
            return 0
        ts_arr = np.asarray(flat.stamps, dtype=np.float64)
        finite = bool(np.isfinite(ts_arr).all())
        with self._db.transaction() as c:
            c.execute(GATE_SHARED, [self._db.gate])
            epoch = int(scalar(c, EPOCH))
            if epoch != cached_epoch:  # maintenance deleted series since: the ids taken may be gone
                with self._cache_lock:
                    if epoch > self._epoch:
                        self._ids, self._epoch = {}, epoch
                    ids = self._ids if epoch == self._epoch else {}
                flat = FlatBatch(batch, ids)
            new_ids, learned = self._add_series(c, flat.pending)
            if not finite:
                raise ValueError("timestamps must be finite")
            sids = np.asarray(flat.sids, dtype=np.int64)
            if flat.pending:
                placeholder = sids < 0
                sids[placeholder] = new_ids[-sids[placeholder] - 1]
            ts_ms = np.rint(ts_arr * 1000.0).astype(np.int64)
            self._write_head(c, ts_ms, sids, np.asarray(flat.values, dtype=np.float64))
        with self._cache_lock:
            if epoch == self._epoch:
                self._ids.update(learned)
        return len(flat.sids)

    def _add_series(
        self, c: Connection[TupleRow], pending: list[Series]
    ) -> tuple[Int64Array, dict[str, int]]:
        """The ids of the series that were not cached, in order, adding those not stored yet; also as
        a key -> id map for the cache."""
        if not pending:
            return np.zeros(0, dtype=np.int64), {}
        learned: dict[str, int] = dict(c.execute(FIND_SERIES, [[s.key for s in pending]]).fetchall())
        new = [s for s in pending if s.key not in learned]
        if new:
            count = int(scalar(c, LOCK_COUNT))
            # Another transaction may have added some of them while this one waited for the lock.
            learned.update(c.execute(FIND_SERIES, [[s.key for s in new]]).fetchall())
            new = [s for s in new if s.key not in learned]
            if count + len(new) > self._max_series:
                raise TooManySeriesError(
                    f"batch adds {len(new)} series to {count}; the limit is {self._max_series}"
                )
            if new:
                if any("\x00" in s.key for s in new):
                    raise ValueError("PostgreSQL text cannot hold NUL characters (a series label has one)")
                rows = [s.key for s in new], [s.name for s in new], [_labels_json(s) for s in new]
                learned.update(c.execute(INSERT_SERIES, rows).fetchall())
                c.execute(ADD_COUNT, [len(new)])
        return np.asarray([learned[s.key] for s in pending], dtype=np.int64), learned

    @staticmethod
    def _write_head(
        c: Connection[TupleRow], ts_ms: Int64Array, sids: Int64Array, values: Float64Array
    ) -> None:
        """COPY the points into ``head``, in head's key order with the last of equal keys kept.

        The order keeps the B-tree appended to at its right edge and makes concurrent appends take row
        locks in one order (no deadlocks); de-duplicating is last write wins inside the batch. COPY cannot
        replace a stored row: a batch that rewrites one (a retry, a correction) fails with a unique
        violation, rolled back to a savepoint, and takes the slower upsert through a staging table."""
        if len(ts_ms) > 1:
            ordered = (ts_ms[1:] > ts_ms[:-1]) | ((ts_ms[1:] == ts_ms[:-1]) & (sids[1:] >= sids[:-1]))
            if not ordered.all():
                order = np.lexsort((sids, ts_ms))  # stable: of equal keys the later stays later
                ts_ms, sids, values = ts_ms[order], sids[order], values[order]
            last = np.ones(len(ts_ms), dtype=bool)
            last[:-1] = (ts_ms[1:] != ts_ms[:-1]) | (sids[1:] != sids[:-1])
            if not last.all():
                ts_ms, sids, values = ts_ms[last], sids[last], values[last]
        data = copy_rows(ts_ms, sids, values)
        try:
            with c.transaction(), c.cursor() as cur, cur.copy(COPY_HEAD) as copy:
                copy.write(data)
            return
        except psycopg.errors.UniqueViolation:
            pass
        c.execute(STAGE)
        with c.cursor() as cur, cur.copy(COPY_STAGE) as copy:
            copy.write(data)
        c.execute(UPSERT_HEAD)

    def series_count(self) -> int:
        with self._db.connection() as c:
            return int(scalar(c, SERIES_COUNT))

    def series(self, matchers: Mapping[str, str] | None = None, limit: int = 1000) -> list[SeriesInfo]:
        """Series whose labels equal every matcher, ordered by key. A matcher with an empty value matches
        series without that label, as in Prometheus."""
        where: list[str] = ["true"]
        params: list[Any] = []
        for name, value in (matchers or {}).items():
            if name == NAME_LABEL:
                where.append("name = %s")
                params.append(value)
            elif LABEL_NAME_RE.match(name):
                if value == "":
                    where.append("coalesce(labels ->> %s, '') = ''")
                    params.append(name)
                else:  # containment, so that the GIN index on labels finds the rows
                    where.append("labels @> %s::jsonb")
                    params.append(json.dumps({name: value}))
            elif value != "":
                return []  # no stored series can carry a label with an invalid name
        query = SERIES_PAGE.format(where=" AND ".join(where))
        with self._db.connection() as c:
            # A negative limit means none, as SQLite's LIMIT -1 does.
            rows = c.execute(query, [*params, limit if limit >= 0 else None]).fetchall()
            maintained = c.execute(STATE).fetchall()[0][2]
        oldest = self._oldest_retained_ms(maintained)
        out = []
        for key, name, labels, first, last in rows:
            # Stored labels are those of a Series, sorted by name; jsonb keeps its own key order.
            series = Series(name, tuple(sorted(labels.items())), key=key)
            if last is None:
                out.append(SeriesInfo(series, None, None))
            else:
                # The first point ever appended, raised to what retention keeps; a series appended only
                # points already past retention (deleted at the next maintenance) shows them as they are,
                # not a first_ts after its last_ts.
                shown = max(first, oldest) if oldest is not None and last >= oldest else first
                out.append(SeriesInfo(series, shown / 1000.0, last / 1000.0))
        return out

    def _oldest_retained_ms(self, maintained_ms: int | None) -> int | None:
        """Start of the oldest hour bucket the last maintenance kept: no point older than it is stored."""
        if maintained_ms is None:
            return None
        return (maintained_ms - round(self._settings.hour_retention_s * 1000)) // HOUR_MS * HOUR_MS

    def resolve(self, start: float) -> Literal["raw", "1m", "1h"]:
        """The finest resolution whose retention still covers ``start``; see :func:`finest_resolution`."""
        with self._db.connection() as c:
            head_newest, newest, maintained = c.execute(STATE).fetchall()[0]
        stored = [r for r in (head_newest, newest) if r is not None]
        return finest_resolution(start, max(stored) if stored else None, maintained, self._settings)

    def query(self, series: Series, start: float, end: float, resolution: Resolution = "auto") -> RangeResult:
        """Points of ``series`` with ``start <= ts <= end``, oldest first; see :meth:`SampleStore.query`.

        Rollup buckets are returned when they overlap ``[start, end]``, stamped with their start, so the
        first bucket may start before ``start``. A point written into a minute that maintenance already
        rolled up shows in raw results at once and in rollups after the next :meth:`maintain`."""
        res = self.resolve(start) if resolution == "auto" else resolution
        a, b = round(start * 1000), round(end * 1000)
        if res == "raw":
            with self._db.connection() as c:
                rows = c.execute(RAW_SQL, {"key": series.key, "a": a, "b": b}).fetchall()
            return raw_result(series, rows)
        width = MIN_MS if res == "1m" else HOUR_MS
        with self._db.connection() as c:
            rows = c.execute(
                ROLLUP_SQL[width], {"key": series.key, "a": a // width * width, "b": b}
            ).fetchall()
        return rollup_result(series, res, rows)

    def query_raw_many(self, series: Sequence[Series], start: float, end: float) -> list[RangeResult]:
        """Raw points of each of ``series``, in order; see :meth:`SampleStore.query_raw_many`.

        ``head`` is read before ``samples``: maintenance only moves points from the first to the second,
        so a point it moves in between is read twice (merged), never missed."""
        a, b = round(start * 1000), round(end * 1000)
        head: dict[int, dict[int, float | None]] = {}
        stored: dict[int, list[tuple[int, float | None]]] = {}
        with self._db.connection() as c:
            ids = dict(c.execute(IDS_BY_KEY, {"keys": list({s.key for s in series})}).fetchall())
            if ids:
                params = {"ids": list(ids.values()), "a": a, "b": b}
                for sid, ts, value in c.execute(HEAD_RANGE, params):
                    head.setdefault(sid, {})[ts] = value
                for sid, ts, value in c.execute(SAMPLES_RANGE, params):
                    stored.setdefault(sid, []).append((ts, value))
        out: list[RangeResult] = []
        for s in series:
            sid = ids.get(s.key)
            out.append(
                merge_raw(s, stored.get(sid, []), head.get(sid)) if sid is not None else raw_result(s, [])
            )
        return out

    def maintain(self, now: float) -> MaintenanceReport:
        """Roll up, compact and apply retention (see :class:`PostgresMaintenance`), then drop from the id
        cache the series that maintenance deleted, if the cache was of the epoch before it."""
        report, before, gone = self._maintenance.run(now)
        if gone:
            with self._cache_lock:
                if self._epoch == before:
                    for key in gone:
                        self._ids.pop(key, None)
                    self._epoch = before + 1
        return report


def _labels_json(series: Series) -> str:
    return json.dumps(dict(series.labels), separators=(",", ":"))
