"""Maintenance of :class:`~opsmind.store.postgres.PostgresStore`: rollups, compaction and retention.

The same steps as :meth:`opsmind.store.sqlite_samples.SqliteSamples.maintain`, in short transactions so
that appends wait at most for one slice. Two things differ. Each transaction takes the write gate
exclusively, where SQLite takes its writer lock. And as rows leave ``head`` their span is folded into
``series`` and their newest time into ``meta`` (``COMPACT``, ``EXPIRE_HEAD``): SQLite keeps those in
memory, but here another process may be the one asking.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import Connection
from psycopg.rows import TupleRow

from opsmind.config import StorageSettings
from opsmind.store.postgres_connections import PostgresConnections, scalar
from opsmind.store.postgres_schema import (
    ANY_LATE,
    COMPACT,
    CREATE_LATE,
    EPOCH,
    EXPIRE_H,
    EXPIRE_HEAD,
    EXPIRE_M,
    EXPIRE_RAW,
    FORGET,
    GATE,
    GONE,
    HOUR_MS,
    LATE,
    MAINTAIN_LOCK,
    MAINTAIN_UNLOCK,
    MAINTAINED,
    MIN_MS,
    REPLACE_ROLLUP,
    REPLACE_SAMPLE,
    REROLL_H,
    REROLL_M,
    ROLL_H,
    ROLL_M,
    SET_WATERMARKS,
    SLICE,
    WATERMARKS,
)
from opsmind.store.protocols import MaintenanceReport

SLICE_ROWS = 200_000  # points per maintenance transaction: bounds how long an append can wait

Conn = Connection[TupleRow]


def _insert_or_replace(c: Conn, insert: str, replace: str, params: dict[str, Any]) -> int:
    """Run ``insert``; only if a row already exists run it again with the ``replace`` clause. Rolling a
    slice forward writes rows that cannot exist yet, and skipping ON CONFLICT skips an index descent per
    row; the savepoint makes the rare retry safe."""
    try:
        with c.transaction():
            return c.execute(insert, params).rowcount
    except psycopg.errors.UniqueViolation:
        return c.execute(insert + replace, params).rowcount


class PostgresMaintenance:
    """Runs :meth:`run` for one store; a run holds a session advisory lock on its connection throughout,
    so two runs (threads or processes) never interleave their slices while appends still run between."""

    def __init__(self, db: PostgresConnections, settings: StorageSettings) -> None:
        self._db = db
        self._settings = settings

    def run(self, now: float) -> tuple[MaintenanceReport, int, list[str]]:
        """Roll up complete minutes and hours, move rolled-up raw points to ``samples``, apply retention and
        forget series that have no data left. Returns the report, the epoch before the run and the keys
        of the series deleted (the epoch went up by one if there are any).

        Points that arrive for a minute already rolled up are folded in by recomputing that minute and its
        hour, unless the bucket already lost part of its raw data to retention."""
        st = self._settings
        now_ms = round(now * 1000)
        p: dict[str, Any] = {"now": now_ms}
        p["raw_cut"] = now_ms - round(st.raw_retention_s * 1000)
        p["min_cut"] = now_ms - round(st.minute_retention_s * 1000)
        p["hour_cut"] = now_ms - round(st.hour_retention_s * 1000)
        p["series_cut"] = p["hour_cut"] // HOUR_MS * HOUR_MS
        with self._db.connection() as c:
            c.execute(MAINTAIN_LOCK, [self._db.maintenance])
            try:
                minutes, hours = self._late(c, p)
                more_minutes, more_hours = self._roll(c, p, target=now_ms // MIN_MS * MIN_MS)
                report, epoch, gone = self._expire(c, p, minutes + more_minutes, hours + more_hours)
            finally:
                if not c.closed and not c.broken:
                    c.execute(MAINTAIN_UNLOCK, [self._db.maintenance])
        return report, epoch, gone

    def _begin(self, c: Conn, p: dict[str, Any]) -> None:
        """In a new transaction: shut appends out, then read the watermarks they can no longer move."""
        c.execute(GATE, [self._db.gate])
        rows: dict[str, int] = dict(c.execute(WATERMARKS).fetchall())
        p.update(wm_m=rows["wm_1m"], wm_h=rows["wm_1h"])

    @staticmethod
    def _drain(c: Conn, p: dict[str, Any], replace: bool) -> None:
        """Move the rows of head before ``p["end"]`` into samples, keeping their span and newest time."""
        if replace:
            c.execute(COMPACT + REPLACE_SAMPLE, p)
        else:
            _insert_or_replace(c, COMPACT, REPLACE_SAMPLE, p)

    def _late(self, c: Conn, p: dict[str, Any]) -> tuple[int, int]:
        """Fold points that arrived for minutes already rolled up into samples and their rollups."""
        with c.transaction():
            self._begin(c, p)
            if c.execute(ANY_LATE, p).fetchone() is None:
                return 0, 0
            c.execute(CREATE_LATE)
            c.execute(LATE, p)
            self._drain(c, {**p, "end": p["wm_m"]}, replace=True)  # late points often rewrite stored ones
            minutes = c.execute(REROLL_M + REPLACE_ROLLUP, p).rowcount
            hours = c.execute(REROLL_H + REPLACE_ROLLUP, p).rowcount
        return minutes, hours

    def _roll(self, c: Conn, p: dict[str, Any], target: int) -> tuple[int, int]:
        """Roll complete minutes up to ``target`` (and the hours they complete), one slice at a time."""
        minutes = hours = 0
        while p["wm_m"] < target:
            with c.transaction():
                self._begin(c, p)
                if p["wm_m"] >= target:
                    break
                row = c.execute(SLICE, {**p, "n": SLICE_ROWS}).fetchone()
                # Whole minutes, at least one, so that a slice makes progress however dense it is.
                end = target if row is None else max(row[0] // MIN_MS * MIN_MS, p["wm_m"] + MIN_MS)
                end = min(end, target)
                p.update(end=end, end_h=max(p["wm_h"], end // HOUR_MS * HOUR_MS))
                minutes += _insert_or_replace(c, ROLL_M, REPLACE_ROLLUP, p)
                self._drain(c, p, replace=False)
                hours += _insert_or_replace(c, ROLL_H, REPLACE_ROLLUP, p)
                c.execute(SET_WATERMARKS, p)
            p.update(wm_m=end, wm_h=p["end_h"])
        return minutes, hours

    def _expire(
        self, c: Conn, p: dict[str, Any], minutes: int, hours: int
    ) -> tuple[MaintenanceReport, int, list[str]]:
        """Apply retention, delete the series left without data and record the maintenance time."""
        with c.transaction():
            self._begin(c, p)
            # Late points written since the first step could belong to a series expired below.
            deleted_raw = int(scalar(c, EXPIRE_HEAD, {"end": p["raw_cut"]}))
            deleted_raw += c.execute(EXPIRE_RAW, p).rowcount
            deleted_minutes = c.execute(EXPIRE_M, p).rowcount
            deleted_hours = c.execute(EXPIRE_H, p).rowcount
            epoch = int(scalar(c, EPOCH))
            gone = [key for (key,) in c.execute(GONE, p).fetchall()]
            if gone:
                c.execute(FORGET, {"gone": len(gone)})
            c.execute(MAINTAINED, p)
        report = MaintenanceReport(minutes, hours, deleted_raw, deleted_minutes, deleted_hours)
        return report, epoch, gone
