"""What only the PostgreSQL backend has: several stores (processes) sharing one schema, schema names, a
server that cannot be reached, and writers running truly in parallel. The behaviour both backends share is
in test_store_contract.py."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from opsmind.config import StorageSettings
from opsmind.store import PostgresStore, SqliteStore, TooManySeriesError
from opsmind.types import Incident, Series, SeriesSamples

pytestmark = pytest.mark.postgres

T0 = 1_700_000_000.0 // 3600 * 3600
HOUR = 3600.0
DAY = 86400.0


@pytest.fixture
def open_store(pg_schema: tuple[str, str]) -> Iterator[Callable[..., PostgresStore]]:
    """Opens stores on the test's schema; all are closed before the schema is dropped."""
    dsn, schema = pg_schema
    opened: list[PostgresStore] = []

    def make(settings: StorageSettings | None = None, max_series: int = 1_000_000) -> PostgresStore:
        store = PostgresStore(dsn, settings, max_series=max_series, schema=schema)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def ser(service: str, name: str = "latency_seconds") -> Series:
    return Series.of(name, {"service": service})


def points(series: Series, ts: list[float], values: list[float]) -> SeriesSamples:
    return SeriesSamples(series, tuple(ts), tuple(values))


def test_two_stores_on_one_schema_see_each_others_writes(open_store: Callable[..., PostgresStore]) -> None:
    one, two = open_store(), open_store()
    a, b = ser("a"), ser("b")
    one.append([points(a, [T0, T0 + 10], [1.0, 2.0])])
    two.append([points(b, [T0], [5.0]), points(a, [T0 + 20], [3.0])])  # `a` was added by the other store
    for store in (one, two):
        assert store.series_count() == 2
        assert [i.series for i in store.series()] == [a, b]
        assert store.query(a, T0, T0 + 60, "raw").values == [1.0, 2.0, 3.0]
        assert store.query(b, T0, T0 + 60, "raw").values == [5.0]
    one.put(Incident(id="i1", at=T0, service="a", title="slow", opened_at=T0, last_anomaly_at=T0))
    assert two.get(Incident, "i1") is not None and [i.id for i in two.find(Incident)] == ["i1"]
    # One store rolls up; the other reads the rollups and the span it recorded.
    one.maintain(T0 + 120)
    r = two.query(a, T0, T0 + 59, "1m")
    assert (r.values, r.counts) == ([2.0], [3])
    (info,) = two.series({"service": "a"})
    assert (info.first_ts, info.last_ts) == (T0, T0 + 20)


def test_series_deleted_by_another_store_can_be_appended_again(
    open_store: Callable[..., PostgresStore],
) -> None:
    settings = StorageSettings(
        raw_retention_s=2 * HOUR, minute_retention_s=6 * HOUR, hour_retention_s=2 * DAY
    )
    one, two = open_store(settings), open_store(settings)
    old, live = ser("old"), ser("live")
    one.append([points(old, [T0], [1.0]), points(live, [T0], [1.0])])  # `one` caches both ids
    two.append([points(live, [T0 + 5 * DAY], [2.0])])
    two.maintain(T0 + 5 * DAY)  # `old` has nothing left: `two` deletes it
    assert two.series_count() == 1
    # `one` still holds the deleted id in its cache; its next append must not write under it.
    one.append([points(old, [T0 + 5 * DAY], [7.0]), points(live, [T0 + 5 * DAY + 1], [3.0])])
    for store in (one, two):
        assert store.series_count() == 2
        assert store.query(old, T0 + 5 * DAY, T0 + 5 * DAY, "raw").values == [7.0]
        assert store.query(live, T0 + 5 * DAY, T0 + 5 * DAY + 1, "raw").values == [2.0, 3.0]


def test_series_limit_holds_across_stores(open_store: Callable[..., PostgresStore]) -> None:
    one, two = open_store(max_series=3), open_store(max_series=3)
    one.append([points(ser("a"), [T0], [1.0]), points(ser("b"), [T0], [1.0])])
    with pytest.raises(TooManySeriesError):
        two.append([points(ser("c"), [T0], [1.0]), points(ser("d"), [T0], [1.0])])
    assert two.append([points(ser("c"), [T0], [1.0])]) == 1
    with pytest.raises(TooManySeriesError):
        one.append([points(ser("d"), [T0], [1.0])])
    assert one.series_count() == two.series_count() == 3


BAD_SCHEMAS = ["bad-name", "x; DROP SCHEMA public", "", "1abc", "pg_mine", "a" * 64, 'q"', "ok\n"]


@pytest.mark.parametrize("schema", BAD_SCHEMAS)
def test_a_bad_schema_name_is_refused(schema: str) -> None:
    with pytest.raises(ValueError, match="schema name"):
        PostgresStore("postgresql://postgres@127.0.0.1:1/test", schema=schema)  # refused before connecting


def test_an_unreachable_server_fails_fast_and_names_itself() -> None:
    started = time.monotonic()
    with pytest.raises(ConnectionError, match=r"127\.0\.0\.1:1\b"):
        PostgresStore("postgresql://postgres@127.0.0.1:1/test", schema="opsmind_unreachable")
    assert time.monotonic() - started < 5


def test_stores_created_at_once_share_the_schema(pg_schema: tuple[str, str]) -> None:
    dsn, schema = pg_schema
    stores: list[PostgresStore] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def create() -> None:
        try:
            barrier.wait()
            stores.append(PostgresStore(dsn, schema=schema))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == [] and len(stores) == 6
        stores[0].append([points(ser("a"), [T0], [1.0])])
        assert stores[5].series_count() == 1
    finally:
        for store in stores:
            store.close()


def test_concurrent_appends_from_threads_all_land(open_store: Callable[..., PostgresStore]) -> None:
    stores = [open_store(), open_store()]
    shared = ser("shared")
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        store = stores[w % 2]  # two stores, as two processes would be, and threads within each
        try:
            for i in range(25):
                batch = [points(ser(f"w{w}-{j}"), [T0 + i], [float(i)]) for j in range(40)]
                # Every writer also rewrites the same points of one series: conflicts between writers.
                batch.append(points(shared, [T0 + i, T0 + 100 + w], [float(w), float(w)]))
                store.append(batch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = stores[0]
    assert store.series_count() == 6 * 40 + 1
    for w in range(6):
        for j in (0, 39):
            assert store.query(ser(f"w{w}-{j}"), T0, T0 + 100, "raw").values == [float(i) for i in range(25)]
    r = store.query(shared, T0, T0 + 200, "raw")
    assert r.timestamps == [T0 + i for i in range(25)] + [T0 + 100 + w for w in range(6)]
    assert r.values[25:] == [float(w) for w in range(6)]
    assert all(v in {float(w) for w in range(6)} for v in r.values[:25])  # one writer's, whichever was last


def test_non_finite_values_aggregate_as_in_sqlite(open_store: Callable[..., PostgresStore]) -> None:
    """SQLite has no NaN: NaN is stored as NULL and a sum of +inf and -inf is NULL. PostgreSQL has NaN,
    and the store must not let it show through: both backends answer the same."""
    pg, lite = open_store(), SqliteStore(":memory:")
    a = ser("a")
    values = [math.inf, -math.inf, 1.0, math.nan, math.nan, math.nan, 2.0, math.inf, 4.0]
    ts = [T0, T0 + 1, T0 + 2, T0 + 60, T0 + 61, T0 + 120, T0 + 121, T0 + 180, T0 + 240]

    def answers(store: Any) -> list[str]:
        store.append([points(a, ts, values)])
        out = [repr(store.query(a, T0, T0 + HOUR, res)) for res in ("raw", "1m", "1h")]
        store.maintain(T0 + 2 * HOUR)
        return out + [repr(store.query(a, T0, T0 + HOUR, res)) for res in ("raw", "1m", "1h")]

    try:
        assert answers(pg) == answers(lite)
    finally:
        lite.close()
