"""The SQLite schema of :class:`~opsmind.store.sqlite.SqliteStore`, the statements it runs over those
tables, and how its connections are opened.

The layout is chosen for ingest speed. New raw points go to ``head``, keyed by ``(ts_ms, series_id)``:
a remote-write batch (thousands of series, one point each) then lands at the right edge of one B-tree and
a commit dirties a handful of pages. Keyed by series first, the same batch dirties one page per series
and measured 5-20 times slower. ``maintain`` rolls complete minutes up from ``head`` into ``rollup_1m``
and only then moves those rows into ``samples``, keyed by ``(series_id, ts_ms)`` so reading one series is
one index range. So ``head`` holds exactly the minutes not rolled up yet (plus late arrivals), and a
query aggregates those on the fly: every resolution sees every acknowledged point.

``meta`` holds the rollup watermarks (``wm_1m``, ``wm_1h``: everything before them is rolled up) and the
time of the last maintenance. Events of every kind share the ``events`` table, one JSON body per record.
"""

from __future__ import annotations

import sqlite3

MIN_MS = 60_000
HOUR_MS = 3_600_000
BUSY_TIMEOUT_MS = 10_000
_WM_M = "(SELECT value FROM meta WHERE name = 'wm_1m')"
_WM_H = "(SELECT value FROM meta WHERE name = 'wm_1h')"

SCHEMA = """
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

INSERT_SERIES = "INSERT INTO series(id, key, name, labels) VALUES (?, ?, ?, ?)"
INSERT_HEAD = "INSERT OR REPLACE INTO head(ts_ms, series_id, value) VALUES (?, ?, ?)"
PUT_EVENT = "INSERT OR REPLACE INTO events(kind, id, at, service, status, body) VALUES (?, ?, ?, ?, ?, ?)"
RAW_SQL = """
SELECT ts_ms, value FROM head WHERE ts_ms BETWEEN :a AND :b AND series_id = :sid
UNION ALL
SELECT ts_ms, value FROM samples AS s WHERE series_id = :sid AND ts_ms BETWEEN :a AND :b
    AND NOT EXISTS (SELECT 1 FROM head AS h WHERE h.ts_ms = s.ts_ms AND h.series_id = :sid)
ORDER BY ts_ms
"""
# query_raw_many: the newest points in one pass (head is keyed by time first, so a per-series read of it
# scans the whole range: fine once, quadratic over a fleet), then each series' stored points by its key.
HEAD_RANGE = "SELECT series_id, ts_ms, value FROM head WHERE ts_ms BETWEEN :a AND :b"
SAMPLES_RANGE = (
    "SELECT ts_ms, value FROM samples WHERE series_id = :sid AND ts_ms BETWEEN :a AND :b ORDER BY ts_ms"
)

# maintain(): ``temp.late`` holds (series, minute) pairs whose points arrived after the minute was rolled up.
# A temporary table belongs to one connection: :func:`open_writer` creates it on the writer.
CREATE_LATE = "CREATE TEMP TABLE late(series_id INTEGER, b INTEGER, PRIMARY KEY(series_id, b))"
LATE = (
    "INSERT INTO temp.late SELECT DISTINCT series_id, ts_ms / :M * :M FROM head"
    " WHERE ts_ms < :wm_m AND ts_ms / :M * :M >= :raw_cut"
)
SLICE = "SELECT ts_ms FROM head WHERE ts_ms >= :wm_m ORDER BY ts_ms LIMIT 1 OFFSET :n"
ROLL_M = (
    "INSERT OR REPLACE INTO rollup_1m SELECT series_id, ts_ms / :M * :M AS b, count(value), sum(value),"
    " min(value), max(value) FROM head WHERE ts_ms >= :wm_m AND ts_ms < :end GROUP BY series_id, b"
)
# Sorted by samples' key so each series' rows are appended to its own pages in one pass.
COMPACT = (
    "INSERT OR REPLACE INTO samples SELECT series_id, ts_ms, value FROM head WHERE ts_ms < :end"
    " ORDER BY series_id, ts_ms"
)
DROP_HEAD = "DELETE FROM head WHERE ts_ms < :end"
REROLL_M = (
    "INSERT OR REPLACE INTO rollup_1m SELECT l.series_id, l.b, count(s.value), sum(s.value), min(s.value),"
    " max(s.value) FROM temp.late AS l JOIN samples AS s ON s.series_id = l.series_id AND s.ts_ms >= l.b"
    " AND s.ts_ms < l.b + :M GROUP BY l.series_id, l.b"
)
ROLL_H = (
    "INSERT OR REPLACE INTO rollup_1h SELECT series_id, bucket_start / :H * :H AS b, sum(count), sum(sum),"
    " min(min), max(max) FROM rollup_1m WHERE bucket_start >= :wm_h AND bucket_start < :end_h"
    " GROUP BY series_id, b"
)
# Only hours whose minutes are all still retained can be recomputed from them.
REROLL_H = (
    "INSERT OR REPLACE INTO rollup_1h SELECT m.series_id, h.b, sum(m.count), sum(m.sum), min(m.min),"
    " max(m.max) FROM (SELECT DISTINCT series_id, b / :H * :H AS b FROM temp.late WHERE b < :wm_h"
    " AND b / :H * :H >= :min_cut) AS h JOIN rollup_1m AS m ON m.series_id = h.series_id"
    " AND m.bucket_start >= h.b AND m.bucket_start < h.b + :H GROUP BY m.series_id, h.b"
)
# One index range per series: samples is keyed by series first, so a bare time filter would scan it all.
EXPIRE_RAW = "DELETE FROM samples WHERE series_id IN (SELECT id FROM series) AND ts_ms < :raw_cut"
# A bucket goes once all of it is older than the cut.
EXPIRE_M = "DELETE FROM rollup_1m WHERE bucket_start <= :min_cut - :M"
EXPIRE_H = "DELETE FROM rollup_1h WHERE bucket_start <= :hour_cut - :H"


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


ROLLUP_SQL = {MIN_MS: _rollup_sql(MIN_MS), HOUR_MS: _rollup_sql(HOUR_MS)}


def connect(path: str) -> sqlite3.Connection:
    """Open one connection in autocommit mode (transactions are begun explicitly) with the pragmas that
    every connection, writer or reader, needs."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA cache_size = -16384")  # 16 MiB: the hot right edge of head and the indexes
    conn.execute("PRAGMA temp_store = MEMORY")  # GROUP BY and ORDER BY sorts in maintain()
    return conn


def open_writer(path: str) -> sqlite3.Connection:
    """Open the write connection: switch a file database to WAL, create any missing tables and the
    writer's scratch table for ``maintain``."""
    conn = connect(path)
    if path != ":memory:":
        # WAL with synchronous=NORMAL writes a transaction's pages to the WAL file before COMMIT
        # returns and fsyncs only at checkpoints: a committed transaction survives kill -9 of this
        # process (the data is in the OS page cache); only an OS crash or power loss may lose the last
        # transactions, and the database stays consistent even then.
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    conn.executescript(SCHEMA)
    conn.execute(CREATE_LATE)
    return conn
