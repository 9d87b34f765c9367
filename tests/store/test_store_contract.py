"""The storage contract, run against every backend.

Each backend is one param of the ``store_factory`` fixture: SQLite in a file and in memory, and PostgreSQL
(marked ``postgres``; a fresh schema per test on the server of ``tests/store/conftest.py``, dropped
after). All data is generated here with explicit timestamps, so the tests do not depend on the wall clock.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from opsmind.config import StorageSettings
from opsmind.store import PostgresStore, SqliteStore, TooManySeriesError
from opsmind.types import Action, ActionStatus, Anomaly, Incident, IncidentStatus, Series, SeriesSamples
from tests.store.conftest import drop_schema, need_postgres, new_schema

T0 = 1_700_000_000.0 // 3600 * 3600  # an hour boundary, so minute and hour buckets are easy to predict
HOUR = 3600.0
DAY = 86400.0


@dataclass
class Backend:
    """Builds stores of one backend. ``make`` opens the same underlying database on every call."""

    name: str
    persistent: bool
    opener: Callable[[StorageSettings | None, int], Any]
    opened: list[Any] = field(default_factory=list)

    def make(self, settings: StorageSettings | None = None, max_series: int = 1_000_000) -> Any:
        store = self.opener(settings, max_series)
        self.opened.append(store)
        return store


@pytest.fixture(params=["sqlite-file", "sqlite-memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    schema = None
    if request.param == "sqlite-file":
        path = str(tmp_path / "store.db")
        backend = Backend(request.param, True, lambda s, m: SqliteStore(path, s, max_series=m))
    elif request.param == "sqlite-memory":
        backend = Backend(request.param, False, lambda s, m: SqliteStore(":memory:", s, max_series=m))
    else:
        # A schema of its own on the test server (skipped or failed as need_postgres says when it is down).
        dsn, schema = need_postgres(), new_schema()
        backend = Backend(
            request.param, True, lambda s, m: PostgresStore(dsn, s, max_series=m, schema=schema)
        )
    yield backend
    for store in backend.opened:
        store.close()
    if schema is not None:
        drop_schema(dsn, schema)


@pytest.fixture
def store(store_factory: Backend) -> Any:
    return store_factory.make()


def ser(name: str = "latency_seconds", **labels: str) -> Series:
    return Series.of(name, labels)


def points(series: Series, ts: list[float], values: list[float]) -> SeriesSamples:
    return SeriesSamples(series, tuple(ts), tuple(values))


def small_retention() -> StorageSettings:
    return StorageSettings(raw_retention_s=2 * HOUR, minute_retention_s=6 * HOUR, hour_retention_s=2 * DAY)


# -- samples -----------------------------------------------------------------------------------------


def test_append_and_query_raw(store: Any) -> None:
    a, b = ser(service="gateway"), ser(service="db")
    n = store.append([points(a, [T0 + 20, T0, T0 + 10], [3.0, 1.0, 2.0]), points(b, [T0 + 5], [9.0])])
    assert n == 4
    r = store.query(a, T0, T0 + 20, "raw")
    assert (r.resolution, r.timestamps, r.values) == ("raw", [T0, T0 + 10, T0 + 20], [1.0, 2.0, 3.0])
    assert r.minimums == r.maximums == r.counts == []
    assert store.query(a, T0 + 1, T0 + 10, "raw").values == [2.0]
    assert store.query(b, T0, T0 + 100, "raw").values == [9.0]
    assert store.query(ser(service="nope"), T0, T0 + 100, "raw").values == []
    assert store.series_count() == 2


def test_millisecond_timestamps_and_nan_round_trip(store: Any) -> None:
    a = ser()
    store.append([points(a, [T0 + 0.001, T0 + 0.002], [math.nan, math.inf])])
    r = store.query(a, T0, T0 + 1, "raw")
    assert r.timestamps == [T0 + 0.001, T0 + 0.002]
    assert math.isnan(r.values[0]) and r.values[1] == math.inf


def test_last_write_wins(store: Any) -> None:
    a = ser()
    store.append([points(a, [T0, T0 + 10], [1.0, 1.0])])
    store.append([points(a, [T0], [2.0])])
    store.append([points(a, [T0 + 10, T0 + 10], [3.0, 4.0])])  # duplicates inside one batch too
    assert store.query(a, T0, T0 + 10, "raw").values == [2.0, 4.0]


def test_last_write_wins_after_maintenance_updates_rollups(store: Any) -> None:
    a = ser()
    store.append([points(a, [T0 + 1, T0 + 2], [10.0, 20.0])])
    store.maintain(T0 + 120)  # rolls the first minute up and moves its points out of the write buffer
    assert store.query(a, T0, T0 + 59, "1m").values == [15.0]
    store.append([points(a, [T0 + 2, T0 + 3], [30.0, 50.0])])  # a correction and a late point
    assert store.query(a, T0, T0 + 59, "raw").values == [10.0, 30.0, 50.0]
    report = store.maintain(T0 + 130)
    assert report.rolled_up_minutes == 1
    r = store.query(a, T0, T0 + 59, "1m")
    assert (r.values, r.counts, r.minimums, r.maximums) == ([30.0], [3], [10.0], [50.0])


def test_query_raw_many_reads_what_query_reads_for_each_series(store: Any) -> None:
    # One pass over the newest points for a whole fleet (the health scores of every service): the same
    # answers as one query per series, also for a point corrected after maintenance moved its minute out
    # of the write buffer, a NaN, a series asked twice and one the store does not have.
    a, b, c = ser(service="gateway"), ser(service="db"), ser("error_ratio", service="db")
    store.append([points(a, [T0 + 1, T0 + 2], [10.0, 20.0]), points(b, [T0 + 5], [math.nan])])
    store.maintain(T0 + 120)
    store.append([points(a, [T0 + 2, T0 + 70], [30.0, 40.0]), points(c, [T0 + 80, T0 + 90], [1.0, 2.0])])
    asked = [a, ser(service="nope"), b, c, a]
    for start, end in ((T0, T0 + 100), (T0 + 2, T0 + 80), (T0 + 500, T0 + 600)):
        many = store.query_raw_many(asked, start, end)
        one = [store.query(s, start, end, "raw") for s in asked]
        assert [r.series for r in many] == asked
        assert [(r.resolution, r.timestamps, [repr(v) for v in r.values]) for r in many] == [
            (r.resolution, r.timestamps, [repr(v) for v in r.values]) for r in one
        ]
    assert store.query_raw_many([a], T0, T0 + 100)[0].values == [10.0, 30.0, 40.0]
    assert store.query_raw_many([], T0, T0 + 100) == []


def test_append_is_all_or_nothing(store_factory: Backend) -> None:
    store = store_factory.make(max_series=3)
    a, b = ser(service="a"), ser(service="b")
    store.append([points(a, [T0], [1.0]), points(b, [T0], [1.0])])
    batch = [
        points(a, [T0 + 1], [2.0]),
        points(ser(service="c"), [T0], [1.0]),
        points(ser(service="d"), [T0], [1.0]),
    ]
    with pytest.raises(TooManySeriesError):
        store.append(batch)
    assert store.series_count() == 2
    assert store.query(a, T0, T0 + 10, "raw").values == [1.0]
    assert [i.series.service for i in store.series()] == ["a", "b"]
    with pytest.raises(ValueError):
        store.append([points(ser(service="c"), [T0], [1.0]), SeriesSamples(a, (T0 + 2,), ())])
    assert store.series_count() == 2
    assert store.append([points(ser(service="c"), [T0], [1.0])]) == 1  # exactly at the limit is fine


def test_series_listing_with_matchers(store: Any) -> None:
    gw = ser("latency_seconds", service="gateway", region="eu")
    db = ser("latency_seconds", service="db")
    err = ser("errors_total", service="gateway")
    store.append(
        [points(gw, [T0, T0 + 30], [1.0, 2.0]), points(db, [T0 + 5], [1.0]), points(err, [T0], [1.0])]
    )

    def keys(matchers: dict[str, str] | None = None, limit: int = 1000) -> list[str]:
        return [i.series.key for i in store.series(matchers, limit)]

    assert keys() == sorted([gw.key, db.key, err.key])
    assert keys({"__name__": "latency_seconds"}) == sorted([gw.key, db.key])
    assert keys({"service": "gateway"}) == sorted([gw.key, err.key])
    assert keys({"__name__": "latency_seconds", "service": "gateway"}) == [gw.key]
    assert keys({"region": ""}) == sorted([db.key, err.key])  # empty value: label absent
    assert keys({"service": "nope"}) == []
    assert len(keys(limit=2)) == 2
    info = store.series({"region": "eu"})[0]
    assert info.series == gw and info.series.as_dict() == gw.as_dict()
    assert (info.first_ts, info.last_ts) == (T0, T0 + 30)


def fill_hours(store: Any, series: Series, start: float, hours: int, step: float = 10.0) -> None:
    """Points every ``step`` seconds; the value is the minute's index since ``start``."""
    ts = [start + i * step for i in range(int(hours * HOUR / step))]
    store.append([points(series, ts, [float((t - start) // 60) for t in ts])])


def test_live_rollups_before_maintenance(store: Any) -> None:
    a = ser()
    fill_hours(store, a, T0, 1)
    r = store.query(a, T0, T0 + 179, "1m")
    assert r.timestamps == [T0, T0 + 60, T0 + 120]
    assert (r.values, r.counts, r.minimums, r.maximums) == (
        [0.0, 1.0, 2.0],
        [6, 6, 6],
        [0.0, 1.0, 2.0],
        [0.0, 1.0, 2.0],
    )
    h = store.query(a, T0, T0 + HOUR - 1, "1h")
    assert (h.timestamps, h.counts, h.values) == ([T0], [360], [29.5])


def test_rollups_and_retention_through_maintain(store_factory: Backend) -> None:
    store = store_factory.make(small_retention())
    a, old = ser(service="a"), ser(service="old")
    fill_hours(store, a, T0, 4)
    store.append([points(old, [T0 - 3 * DAY], [1.0])])  # already past every retention
    end = T0 + 4 * HOUR
    report = store.maintain(end + 30)
    # Everything is rolled up before retention applies, `old` included (its buckets then expire).
    assert (report.rolled_up_minutes, report.rolled_up_hours) == (4 * 60 + 1, 4 + 1)
    assert report.deleted_raw == 2 * 360 + 3 + 1  # points older than end+30-2h, plus `old`
    assert (report.deleted_minutes, report.deleted_hours) == (1, 1)
    assert store.series_count() == 1  # `old` had nothing left and was forgotten
    raw = store.query(a, T0, end, "raw")
    assert raw.timestamps[0] == end + 30 - 2 * HOUR and len(raw.timestamps) == 2 * 360 - 3
    m = store.query(a, T0 + 59, T0 + 180, "1m")  # buckets overlapping the range, stamped with their start
    assert (m.timestamps, m.values, m.counts) == (
        [T0, T0 + 60, T0 + 120, T0 + 180],
        [0.0, 1.0, 2.0, 3.0],
        [6] * 4,
    )
    h = store.query(a, T0, end, "1h")
    assert h.timestamps == [T0 + i * HOUR for i in range(4)]
    assert h.counts == [360] * 4
    assert h.values == [29.5 + 60 * i for i in range(4)]
    assert (h.minimums[1], h.maximums[1]) == (60.0, 119.0)
    # Four hours later the raw points and the first two hours of minute rollups expire; hours stay.
    report = store.maintain(end + 4 * HOUR)
    assert (report.rolled_up_minutes, report.deleted_raw, report.deleted_minutes) == (0, 2 * 360 - 3, 120)
    assert store.query(a, T0, end, "1m").timestamps[0] == T0 + 2 * HOUR
    assert len(store.query(a, T0, end, "1h").timestamps) == 4
    # A point appended already past every retention is listed as it is until maintenance deletes it
    # (its first_ts was shown as the retention's edge, after its own last_ts).
    late = ser(service="late")
    store.append([points(late, [T0 - 3 * DAY], [1.0])])
    (info,) = store.series({"service": "late"})
    assert info.first_ts == info.last_ts == T0 - 3 * DAY
    # Past the hour retention nothing is left and the series slot is freed.
    report = store.maintain(end + 3 * DAY)
    assert report.deleted_hours == 4
    assert store.series_count() == 0 and store.series() == []


def test_auto_resolution(store_factory: Backend) -> None:
    store = store_factory.make(small_retention())
    a = ser()
    now = T0 + DAY
    store.append([points(a, [T0 + i * 60 for i in range(24 * 60 + 1)], [1.0] * (24 * 60 + 1))])
    assert store.resolve(now - HOUR) == "raw"
    assert store.query(a, now - HOUR, now).resolution == "raw"
    assert store.query(a, now - 3 * HOUR, now).resolution == "1m"
    r = store.query(a, now - 12 * HOUR, now)
    assert r.resolution == "1h" and r.counts[-1] == 1 and sum(r.counts) == 12 * 60 + 1


def test_queries_while_appending_from_threads(store: Any) -> None:
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for i in range(50):
                store.append([points(ser(service=f"s{w}-{j}"), [T0 + i], [float(i)]) for j in range(20)])
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(50):
                store.series({"__name__": "latency_seconds"}, 10)
                store.query(ser(service="s0-0"), T0, T0 + 100, "raw")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)] + [
        threading.Thread(target=reader)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.series_count() == 60
    assert len(store.query(ser(service="s2-19"), T0, T0 + 100, "raw").values) == 50


# -- events ------------------------------------------------------------------------------------------


def incident(at: float, service: str, status: IncidentStatus = IncidentStatus.OPEN, **kw: Any) -> Incident:
    return Incident(
        at=at,
        service=service,
        title=f"{service} is slow",
        status=status,
        opened_at=at,
        last_anomaly_at=at,
        **kw,
    )


def test_events_put_get_and_upsert(store: Any) -> None:
    inc = incident(T0, "gateway", id="i1")
    store.put(inc)
    assert store.get(Incident, "i1") == inc
    assert store.get(Incident, "missing") is None
    assert store.get(Action, "i1") is None  # kinds are separate namespaces
    resolved = inc.model_copy(
        update={"status": IncidentStatus.RESOLVED, "resolved_at": T0 + 60, "at": T0 + 60}
    )
    store.put(resolved)
    assert store.get(Incident, "i1") == resolved
    assert store.find(Incident) == [resolved]


def test_events_find_filters_and_order(store: Any) -> None:
    store.put(incident(T0 + 1, "gateway", id="a"))
    store.put(incident(T0 + 2, "db", id="b"))
    store.put(incident(T0 + 3, "gateway", IncidentStatus.RESOLVED, id="c"))
    store.put(incident(T0 + 4, "gateway", id="d"))
    store.put(
        Action(at=T0 + 5, service="gateway", name="scale", target="gateway", status=ActionStatus.APPROVED)
    )
    store.put(
        Anomaly(at=T0 + 6, series="x", ts=T0 + 6, value=1.0, score=9.0, probability=0.9, detector="mad")
    )

    def ids(**kw: Any) -> list[str]:
        return [r.id for r in store.find(Incident, **kw)]

    assert ids() == ["d", "c", "b", "a"]
    assert ids(newest_first=False) == ["a", "b", "c", "d"]
    assert ids(service="gateway") == ["d", "c", "a"]
    assert ids(status="open") == ["d", "b", "a"]
    assert ids(status=IncidentStatus.RESOLVED) == ["c"]
    assert ids(service="gateway", status="open", limit=1) == ["d"]
    assert ids(since=T0 + 2, until=T0 + 3) == ["c", "b"]
    assert ids(service="nope") == []
    assert [a.name for a in store.find(Action, status="approved")] == ["scale"]
    assert len(store.find(Anomaly, service=None)) == 1


# -- persistence -------------------------------------------------------------------------------------


def test_reopen_keeps_data(store_factory: Backend) -> None:
    if not store_factory.persistent:
        pytest.skip(f"{store_factory.name} keeps nothing after close")
    store = store_factory.make(small_retention())
    a, b = ser(service="a"), ser(service="b")
    fill_hours(store, a, T0, 2)
    store.maintain(T0 + HOUR + 90)  # part rolled up and moved, part still in the write buffer
    store.append([points(b, [T0 + 7], [7.0])])
    store.put(incident(T0, "a", id="i1"))
    before = (
        store.query(a, T0, T0 + 2 * HOUR, "raw"),
        store.query(a, T0, T0 + 2 * HOUR, "1m"),
        store.series(),
    )
    store.close()

    again = store_factory.make(small_retention())
    assert again.series_count() == 2
    after = (
        again.query(a, T0, T0 + 2 * HOUR, "raw"),
        again.query(a, T0, T0 + 2 * HOUR, "1m"),
        again.series(),
    )
    assert after == before
    assert again.get(Incident, "i1") == incident(T0, "a", id="i1")
    c = ser(service="c")
    again.append([points(c, [T0], [1.0])])  # new ids do not collide with stored ones
    assert again.query(c, T0, T0, "raw").values == [1.0]
    assert again.query(b, T0, T0 + 10, "raw").values == [7.0]
