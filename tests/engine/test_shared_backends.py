"""The engine on its server-grade backends: PostgreSQL for the stores and Redis Streams for the bus, the
real servers on 127.0.0.1 (tests/store/conftest.py, tests/bus/conftest.py: skipped where they are
missing, required on CI).

The same spine as tests/engine/test_pipeline.py, so what it shows is that nothing in the engine depends on
the embedded backends: a spike becomes an anomaly, an incident and a notification with every record in
PostgreSQL and every message through Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from opsmind.config import Settings, load_settings
from opsmind.engine import Engine
from opsmind.notify.stage import RetryPolicy
from opsmind.store.postgres import PostgresStore
from opsmind.types import Anomaly, Incident, IncidentStatus, Series, SeriesSamples
from tests.bus.conftest import delete_prefix, need_redis, new_prefix
from tests.engine.test_live import LATENCY, connect, recv
from tests.engine.test_pipeline import Collect, history, wait_for
from tests.store.conftest import drop_schema, need_postgres, new_schema

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
Servers = tuple[str, str, str, str]  # PostgreSQL DSN, schema, Redis URL, stream prefix


@pytest.fixture
def servers() -> Iterator[Servers]:
    """``(dsn, schema, redis url, prefix)`` of this test alone; cleaned up afterwards."""
    dsn, url = need_postgres(), need_redis()
    schema, prefix = new_schema(), new_prefix()
    yield dsn, schema, url, prefix
    drop_schema(dsn, schema)
    delete_prefix(url, prefix)


def shared_settings(tmp_path: Path, servers: Servers, **extra: Any) -> Settings:
    dsn, schema, url, prefix = servers
    base: dict[str, Any] = {
        "storage": {
            "backend": "postgres",
            "dsn": dsn,
            "pg_schema": schema,
            "path": str(tmp_path / "unused.db"),
        },
        "bus": {"backend": "redis", "redis_url": url, "redis_prefix": prefix, "ack_timeout_s": 0.5},
        "incidents": {"group_window_s": 60, "resolve_after_s": 0.5, "check_interval_s": 0.05},
        "notify": {"group_wait_s": 0, "group_interval_s": 0.05, "flush_interval_s": 0.05},
    }
    base.update(extra)
    return load_settings(**base)


async def test_the_spine_runs_on_postgres_and_redis(tmp_path: Path, servers: Servers) -> None:
    collect = Collect()
    engine = Engine(shared_settings(tmp_path, servers), notifiers=[(collect, RetryPolicy(0, 0.01))])
    await engine.start()
    try:
        t0 = time.time() - 300  # recent: the engine's maintenance (real clock) applies retention
        await engine.ingest(history("checkout", 100, t0), "test")
        s = Series.of("latency_seconds", {"service": "checkout"})
        await engine.ingest([SeriesSamples(s, (t0 + 100, t0 + 101), (55.0, 60.0))], "test")
        await wait_for(lambda: len(engine.store.find(Anomaly)) >= 2, timeout=30)
        await wait_for(lambda: bool(engine.store.find(Incident)), timeout=30)
        await wait_for(lambda: engine.store.find(Incident)[0].status is IncidentStatus.RESOLVED, timeout=30)
        await wait_for(lambda: [e for e, _ in collect.events] == ["opened", "resolved"], timeout=30)
        health = engine.health()
        assert (health["storage"], health["bus"], health["series"]) == ("postgres", "redis", 1)
    finally:
        await engine.stop()
    # Everything is in PostgreSQL, readable by another process's store.
    dsn, schema, _, _ = servers
    with PostgresStore(dsn, schema=schema) as other:
        assert other.series_count() == 1
        assert len(other.query(s, t0, t0 + 101, "raw").values) == 102
        assert other.find(Incident)[0].anomaly_count == 2


async def test_health_says_degraded_when_the_database_fails_under_it(
    tmp_path: Path, servers: Servers
) -> None:
    """The store's tables vanish under a running engine (a restore, a wrong migration): the health route
    says so in its answer instead of failing with a 500, and recovers when they are back."""
    engine = Engine(shared_settings(tmp_path, servers))
    await engine.start()
    try:
        assert engine.health()["status"] == "ok"
        dsn, schema, _, _ = servers
        drop_schema(dsn, schema)
        health = engine.health()
        assert health["status"] == "degraded" and health["series"] is None
        assert "meta" in health["storage_error"]  # names what is missing
    finally:
        await engine.stop()


async def test_the_live_hub_is_in_the_samples_group_on_redis_only_while_a_series_is_followed(
    tmp_path: Path, servers: Servers
) -> None:
    _, _, url, prefix = servers
    key = f"{prefix}:samples"
    r = redis.Redis.from_url(url, decode_responses=True)

    def groups() -> set[str]:
        return {g["name"] for g in r.xinfo_groups(key)}

    r.xgroup_create(key, "live", id="$", mkstream=True)  # as an engine killed with a follower leaves it
    engine = Engine(shared_settings(tmp_path, servers))
    await engine.start()
    try:
        assert "live" not in groups() and groups(), "the dead hub's group is left at start"
        client = await connect(engine, topics=["samples"], series=[LATENCY.key])
        assert "live" in groups()
        await engine.ingest([SeriesSamples(LATENCY, (1.0,), (2.0,))], "t")
        assert (await recv(client))["data"]["points"] == [[1.0, 2.0]]
        client.disconnect()
        await wait_for(lambda: "live" not in groups(), timeout=10)
        await engine.ingest([SeriesSamples(LATENCY, (2.0,), (3.0,))], "t")
        await wait_for(lambda: r.xlen(key) == 0, timeout=10)  # drained by the engine's own groups
    finally:
        await engine.stop()
        r.close()
