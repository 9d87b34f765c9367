"""The live hub in a real engine, without a server: the protocol as LiveClient speaks it (hello, subscribe,
events numbered in sequence, filters, resume with since, reset, errors), a slow client dropped without
holding the bus, and events from the pipeline (samples, anomalies, incidents), the store's records
(audit, automation, remediations, scaling decisions) and the health timer."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from opsmind.config import Settings, load_settings
from opsmind.engine import Engine
from opsmind.engine.live import GROUP, Close, LiveClient, LiveHub
from opsmind.heal.state import RemediationState as S
from opsmind.heal.state import new_remediation
from opsmind.types import AuditEntry, Decision, Record, Series, SeriesSamples

PRINCIPAL = {"name": "alice", "role": "operator"}
LATENCY = Series.of("latency_seconds", {"service": "checkout"})
OTHER = Series.of("latency_seconds", {"service": "cart"})


def settings(tmp_path: Path, **extra: Any) -> Settings:
    base: dict[str, Any] = {
        "storage": {"path": str(tmp_path / "live.db")},
        "notify": {"log": False, "group_wait_s": 0, "flush_interval_s": 0.05},
        "predict": {"enabled": False},
        "incidents": {"group_window_s": 60, "resolve_after_s": 30, "check_interval_s": 0.05},
        "live": {"health_interval_s": 0},  # health is computed on demand in these tests
    }
    for k, v in extra.items():
        base[k] = {**base[k], **v} if isinstance(base.get(k), dict) and isinstance(v, dict) else v
    return load_settings(**base)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    e = Engine(settings(tmp_path))
    await e.start()
    try:
        yield e
    finally:
        await e.stop()


def hub_of(engine: Engine) -> LiveHub:
    assert engine.live is not None
    return engine.live


async def recv(client: LiveClient, timeout: float = 5.0) -> dict[str, Any]:
    item = await asyncio.wait_for(client.next(), timeout)
    assert isinstance(item, str), item
    msg: dict[str, Any] = json.loads(item)
    return msg


async def connect(engine: Engine, **subscribe: Any) -> LiveClient:
    """A client past hello and subscribed with ``subscribe`` (nothing given: every topic, no series)."""
    client = hub_of(engine).connect(PRINCIPAL)
    hello = await recv(client)
    assert hello == {"type": "hello", "seq": hub_of(engine).seq, "principal": PRINCIPAL}
    client.receive(json.dumps({"type": "subscribe", **subscribe}))
    assert (await recv(client))["type"] == "subscribed"
    return client


async def put(engine: Engine, *records: Record) -> None:
    """Write records the way the stages do (from a worker thread)."""
    await asyncio.to_thread(engine.store.put_many, list(records))


def audit(verb: str = "note", service: str | None = None, **detail: Any) -> AuditEntry:
    return AuditEntry(at=time.time(), service=service, actor="test", verb=verb, subject="x", detail=detail)


async def marker(engine: Engine, *clients: LiveClient) -> None:
    """Nothing else is queued for ``clients`` (subscribed to ``audit``): a marker audit entry is the very
    next event each of them gets."""
    m = audit("marker")
    await put(engine, m)
    for client in clients:
        ev = await recv(client)
        assert ev["topic"] == "audit" and ev["data"]["id"] == m.id, ev


async def wait_for(cond: Callable[[], bool], timeout: float = 10) -> None:
    for _ in range(int(timeout / 0.02)):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


# -- the protocol --


async def test_hello_subscribe_and_events_numbered_in_sequence(engine: Engine) -> None:
    hub = hub_of(engine)
    client = hub.connect(PRINCIPAL)
    hello = await recv(client)
    assert hello["type"] == "hello" and hello["principal"] == PRINCIPAL
    start = hello["seq"]
    client.receive(json.dumps({"type": "subscribe", "topics": ["audit"]}))
    assert await recv(client) == {"type": "subscribed", "seq": start}
    entries = [audit(service="checkout", n=i) for i in range(5)]
    await put(engine, *entries)
    got = [await recv(client) for _ in entries]
    assert [e["seq"] for e in got] == list(range(start + 1, start + 6))
    assert [e["data"]["id"] for e in got] == [e.id for e in entries]
    first = got[0]
    assert set(first) == {"type", "seq", "topic", "ts", "service", "data"}
    assert first["type"] == "event" and first["topic"] == "audit" and first["service"] == "checkout"
    assert first["ts"] == entries[0].at and first["data"]["detail"] == {"n": 0}
    client.receive('{"type": "ping"}')
    assert await recv(client) == {"type": "pong", "seq": start + 5}


async def test_topic_service_and_series_filters(engine: Engine) -> None:
    only_cart = await connect(engine, topics=["audit"], services=["cart"])
    everything = await connect(engine)  # no topics: every topic; no series: no samples
    await put(engine, audit(service="checkout"), audit(service="cart"), audit(service=None))
    got = [await recv(only_cart), await recv(only_cart)]
    assert [e["service"] for e in got] == ["cart", None]  # an entry about no service concerns everyone
    assert [(await recv(everything))["service"] for _ in range(3)] == ["checkout", "cart", None]

    follows = await connect(engine, topics=["samples", "audit"], series=[OTHER.key])
    await engine.ingest(
        [SeriesSamples(LATENCY, (1.0,), (1.0,)), SeriesSamples(OTHER, (1.0, 2.0), (3.0, 4.0))], "t"
    )
    ev = await recv(follows)
    assert ev["topic"] == "samples" and ev["service"] == "cart"
    assert ev["data"] == {
        "series": OTHER.key,
        "service": "cart",
        "metric": "latency_seconds",
        "points": [[1.0, 3.0], [2.0, 4.0]],
    }
    # checkout's samples were not sent, nor any to a client that follows no series
    await marker(engine, follows, everything)


async def test_series_keys_are_read_in_any_label_order(engine: Engine) -> None:
    s = Series.of("error_ratio", {"service": "cart", "zone": "a"})
    client = await connect(engine, topics=["samples"], series=['error_ratio{zone="a",service="cart"}'])
    await engine.ingest([SeriesSamples(s, (5.0,), (0.1,))], "t")
    assert (await recv(client))["data"]["series"] == s.key


async def test_samples_cost_nothing_while_nobody_follows_a_series(engine: Engine) -> None:
    hub = hub_of(engine)
    client = await connect(engine, topics=["samples"], series=[LATENCY.key])
    before = hub.seq
    client.receive(json.dumps({"type": "subscribe", "topics": ["samples"]}))  # follows nothing now
    assert (await recv(client))["type"] == "subscribed"
    await engine.ingest([SeriesSamples(LATENCY, (1.0,), (1.0,))], "t")
    await wait_for(lambda: engine.bus.backlog("samples") == 0)
    assert hub.seq == before and not hub._series_refs


def has_live_group(engine: Engine, topic: str) -> bool:
    # The memory bus's group table (no public listing of groups in the Bus protocol).
    t = engine.bus._topics.get(topic)  # type: ignore[attr-defined]
    return t is not None and GROUP in t.groups


async def test_the_hub_is_in_the_samples_group_only_while_a_series_is_followed(engine: Engine) -> None:
    hub = hub_of(engine)
    assert not has_live_group(engine, "samples") and has_live_group(engine, "incidents")
    client = await connect(engine, topics=["samples"], series=[LATENCY.key])
    assert has_live_group(engine, "samples"), "joined before the client heard 'subscribed'"
    await engine.ingest([SeriesSamples(LATENCY, (1.0,), (2.0,))], "t")
    assert (await recv(client))["data"]["points"] == [[1.0, 2.0]]
    client.receive(json.dumps({"type": "subscribe", "topics": ["samples"]}))  # follows no series now
    assert (await recv(client))["type"] == "subscribed"
    await wait_for(lambda: not has_live_group(engine, "samples"))
    before = hub.seq
    await engine.ingest([SeriesSamples(LATENCY, (2.0,), (3.0,))], "t")
    await wait_for(lambda: engine.bus.backlog("samples") == 0)
    assert hub.seq == before
    # Followed again (by another client, the first one leaving): joined again, at the topic's end.
    again = await connect(engine, topics=["samples"], series=[LATENCY.key])
    client.disconnect()
    await engine.ingest([SeriesSamples(LATENCY, (3.0,), (4.0,))], "t")
    assert (await recv(again))["data"]["points"] == [[3.0, 4.0]]
    assert has_live_group(engine, "samples")
    again.disconnect()
    await wait_for(lambda: not has_live_group(engine, "samples"))


async def test_following_and_unfollowing_quickly_never_loses_the_group(engine: Engine) -> None:
    """Unfollow and follow again in the same breath, many times: the follower must not leave the group a
    client just asked for (a leave racing a join), so the last subscription's samples arrive."""
    client = await connect(engine, topics=["samples"], series=[LATENCY.key])
    for _ in range(20):
        client.receive(json.dumps({"type": "subscribe", "topics": ["samples"]}))
        client.receive(json.dumps({"type": "subscribe", "topics": ["samples"], "series": [LATENCY.key]}))
        await asyncio.sleep(random.random() * 0.005)
    await wait_for(lambda: has_live_group(engine, "samples") and not hub_of(engine)._samples_leaving)
    while client.pending():
        await recv(client)  # the subscribed acknowledgements
    await engine.ingest([SeriesSamples(LATENCY, (9.0,), (9.0,))], "t")
    assert (await recv(client))["data"]["points"] == [[9.0, 9.0]]


async def test_resume_with_since_has_no_gap_and_no_duplicate(engine: Engine) -> None:
    first = await connect(engine, topics=["audit"])
    await put(engine, *(audit(n=i) for i in range(3)))
    seen = [await recv(first) for _ in range(3)]
    first.disconnect()
    await put(engine, *(audit(n=i) for i in range(3, 7)))  # missed while away
    await wait_for(lambda: hub_of(engine).seq == seen[-1]["seq"] + 4)
    again = await connect(engine)
    again.receive(json.dumps({"type": "subscribe", "topics": ["audit"], "since": seen[-1]["seq"]}))
    assert (await recv(again))["type"] == "subscribed"
    await put(engine, audit(n=7))  # live, after the replay
    resumed = [await recv(again) for _ in range(5)]
    assert [e["data"]["detail"]["n"] for e in resumed] == [3, 4, 5, 6, 7]
    seqs = [e["seq"] for e in seen + resumed]
    assert seqs == list(range(seqs[0], seqs[0] + 8))
    await marker(engine, again)


async def test_replay_applies_the_new_filter(engine: Engine) -> None:
    client = await connect(engine, topics=["audit"])
    since = hub_of(engine).seq
    await put(engine, audit(service="a"), audit(service="b"), audit(service="a"))
    for _ in range(3):
        await recv(client)
    client.receive(json.dumps({"type": "subscribe", "topics": ["audit"], "services": ["b"], "since": since}))
    assert (await recv(client))["type"] == "subscribed"
    assert (await recv(client))["service"] == "b"
    await marker(engine, client)


async def test_since_older_than_the_buffer_or_unknown_gets_a_reset(tmp_path: Path) -> None:
    engine = Engine(settings(tmp_path, live={"buffer_size": 5}))
    await engine.start()
    try:
        hub = hub_of(engine)
        start = hub.seq
        await put(engine, *(audit(n=i) for i in range(8)))
        await wait_for(lambda: hub.seq == start + 8)
        assert [e.seq for e in hub.buffer] == list(range(start + 4, start + 9))
        client = await connect(engine)  # the oldest still buffered, less one: a full replay
        client.receive(json.dumps({"type": "subscribe", "topics": ["audit"], "since": start + 3}))
        assert (await recv(client))["type"] == "subscribed"
        assert [(await recv(client))["data"]["detail"]["n"] for _ in range(5)] == [3, 4, 5, 6, 7]
        client.disconnect()
        # older than the buffer, from the future, or from before a restart (numbers start at the
        # start time in milliseconds, so an old process's numbers are far below)
        for since in (start, start + 2, hub.seq + 100, 0):
            client = await connect(engine)
            client.receive(json.dumps({"type": "subscribe", "since": since}))
            assert await recv(client) == {"type": "subscribed", "seq": hub.seq}
            assert await recv(client) == {"type": "reset", "seq": hub.seq}
            await marker(engine, client)
            client.disconnect()
    finally:
        await engine.stop()


async def test_a_slow_client_is_dropped_with_1013_without_holding_the_bus(tmp_path: Path) -> None:
    # Only the hub reads samples here: a shed message would be the hub's fault.
    engine = Engine(
        settings(tmp_path, live={"client_queue": 20}, bus={"max_backlog": 20}, detect={"enabled": False})
    )
    await engine.start()
    try:
        hub = hub_of(engine)
        slow = await connect(engine, topics=["samples"], series=[LATENCY.key])
        fast = await connect(engine, topics=["samples"], series=[LATENCY.key])
        received: list[dict[str, Any]] = []

        async def read_fast() -> None:  # as the WebSocket's writer does
            while True:
                item = await fast.next()
                assert isinstance(item, str), item
                received.append(json.loads(item))

        reader = asyncio.create_task(read_fast())
        t0 = time.monotonic()
        for i in range(100):  # five times the bus's backlog and the slow client's queue
            stored = await engine.ingest([SeriesSamples(LATENCY, (float(i),), (1.0,))], "t")
            assert stored == 1
        await wait_for(lambda: len(received) == 100)
        reader.cancel()
        assert time.monotonic() - t0 < 10
        assert engine.bus.pending("samples", GROUP) == {}  # the hub acked everything
        assert [e["data"]["points"][0][0] for e in received] == [float(i) for i in range(100)]
        assert slow not in hub.clients
        close = await slow.next()
        assert isinstance(close, Close) and close.code == 1013
        assert "since=" in close.reason and len(close.reason.encode()) <= 123
        assert engine.telemetry.value("opsmind_live_dropped_clients_total") == 1
        assert hub._series_refs[LATENCY.key] == 1  # the dropped client's series is forgotten
    finally:
        await engine.stop()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("nope", "not JSON"),
        ("[1, 2]", "JSON object"),
        ("{}", 'needs a "type"'),
        ('{"type": "dance"}', "unknown message type"),
        ('{"type": "subscribe", "topics": ["gossip"]}', "unknown topic"),
        ('{"type": "subscribe", "topics": "audit"}', "topics must be a list"),
        ('{"type": "subscribe", "series": ["not a {series"]}', "series"),
        ('{"type": "subscribe", "since": -1}', "since"),
        ('{"type": "subscribe", "since": true}', "since"),
        ('{"type": "subscribe", "since": "5"}', "since"),
        ('{"type": "subscribe", "topic": ["audit"]}', "unknown field"),
        ('{"type": "ping", "x": 1}', "ping takes no fields"),
        ("x" * 70_000, "longer than"),
    ],
)
async def test_malformed_messages_get_an_error_and_the_connection_stays(
    engine: Engine, text: str, says: str
) -> None:
    client = await connect(engine, topics=["audit"])
    client.receive(text)
    err = await recv(client)
    assert err["type"] == "error" and says in err["reason"], err
    await marker(engine, client)  # the old subscription still holds
    client.receive('{"type": "ping"}')
    assert (await recv(client))["type"] == "pong"


async def test_binary_frames_get_an_error(engine: Engine) -> None:
    client = await connect(engine)
    client.receive(b'{"type": "ping"}')
    assert (await recv(client))["type"] == "error"


async def test_stop_closes_clients_with_1001(tmp_path: Path) -> None:
    engine = Engine(settings(tmp_path))
    await engine.start()
    client = await connect(engine, topics=["audit"])
    await engine.stop()
    close = await client.next()
    assert isinstance(close, Close) and close.code == 1001


# -- where events come from --


async def test_audit_automation_remediations_and_decisions_from_the_store(engine: Engine) -> None:
    client = await connect(engine, topics=["audit", "automation", "remediations", "decisions"])
    mode = audit("automation_mode", mode="off", who="bob", why="incident", previous="on")
    await put(engine, mode)
    got = [await recv(client), await recv(client)]
    assert [e["topic"] for e in got] == ["audit", "automation"]  # every audit entry is on audit
    assert got[1]["data"]["mode"] == "off" and got[1]["data"]["verb"] == "automation_mode"
    await put(engine, audit("service_pause", service="cart", paused=True), audit("scale_override"))
    got = [await recv(client), await recv(client), await recv(client)]
    assert [e["topic"] for e in got] == ["audit", "automation", "audit"]
    assert got[1]["service"] == "cart" and got[1]["data"]["paused"] is True

    rem = new_remediation(
        service="cart", runbook="restart", risk=1, step_count=1, at=time.time(), by="t", why="w"
    )
    await put(engine, rem)
    await put(engine, rem.changed(at=time.time(), sent_keys=("k",)))  # rewritten without a move: not news
    moved = rem.advance(S.APPROVED, at=time.time(), by="bob", why="ok")
    await put(engine, moved)
    got = [await recv(client), await recv(client)]
    assert [(e["topic"], e["data"]["state"], e["data"]["previous"]) for e in got] == [
        ("remediations", "proposed", None),
        ("remediations", "approved", "proposed"),
    ]
    assert got[1]["service"] == "cart" and got[1]["data"]["id"] == rem.id and not got[1]["data"]["finished"]

    scale = Decision(
        at=time.time(),
        service="cart",
        name="scale",
        value={"replicas": 3, "cost": float("nan")},
        reasons=("r",),
    )
    await put(engine, Decision(at=time.time(), name="automation_mode", value={}), scale)
    ev = await recv(client)
    assert ev["topic"] == "decisions" and ev["service"] == "cart"
    assert (
        ev["data"]["replicas"] == 3 and ev["data"]["cost"] is None and ev["data"]["decision_id"] == scale.id
    )
    await marker(engine, client)  # the automation_mode Decision record itself is not an event


def golden(service: str, t_end: float, n: int = 60) -> list[SeriesSamples]:
    """Fifteen minutes of a steady, healthy service."""
    labels = {"service": service}
    ts = tuple(t_end - 15.0 * (n - 1 - i) for i in range(n))
    return [
        SeriesSamples(Series.of("request_rate", labels), ts, tuple(100.0 + (i % 5) for i in range(n))),
        SeriesSamples(Series.of("error_ratio", labels), ts, (0.002,) * n),
        SeriesSamples(Series.of("latency_seconds", labels), ts, tuple(0.2 for _ in range(n))),
    ]


async def test_health_is_pushed_when_it_moves_by_a_point_or_changes_status(tmp_path: Path) -> None:
    engine = Engine(settings(tmp_path, detect={"enabled": False}))
    await engine.start()
    try:
        hub = hub_of(engine)
        client = await connect(engine, topics=["health"])
        now = time.time()
        await engine.ingest(golden("pay", now), "t")
        await hub.check_health()
        first = await recv(client)
        assert first["topic"] == "health" and first["service"] == "pay"
        assert first["data"]["status"] == "ok" and first["data"]["previous_status"] is None
        await hub.check_health()  # nothing changed
        # Most requests fail now: twice as many recent error readings as the healthy ones.
        recent = tuple(now - 1 - 7.0 * k for k in range(16))
        errors = Series.of("error_ratio", {"service": "pay"})
        await engine.ingest([SeriesSamples(errors, recent, (0.9,) * 16)], "t")
        await hub.check_health()
        second = await recv(client)
        assert second["data"]["status"] != "ok" and second["data"]["previous_status"] == "ok"
        assert second["data"]["score"] <= first["data"]["score"] - 1
        assert second["seq"] == first["seq"] + 1  # the unchanged check pushed nothing
    finally:
        await engine.stop()


async def test_health_timer_runs_on_the_engine_clock(tmp_path: Path) -> None:
    engine = Engine(settings(tmp_path, live={"health_interval_s": 0.05}, detect={"enabled": False}))
    await engine.start()
    try:
        client = await connect(engine, topics=["health"])
        await engine.ingest(golden("pay", time.time()), "t")
        ev = await recv(client)
        assert ev["topic"] == "health" and ev["data"]["service"] == "pay"
    finally:
        await engine.stop()


async def test_pipeline_samples_anomalies_and_an_incident_arrive_live(tmp_path: Path) -> None:
    engine = Engine(settings(tmp_path))
    await engine.start()
    try:
        watch = await connect(engine, topics=["samples", "anomalies", "incidents"], series=[LATENCY.key])
        rng = random.Random(0)
        t0 = time.time() - 200
        ts = tuple(t0 + i for i in range(100))
        await engine.ingest([SeriesSamples(LATENCY, ts, tuple(10 + rng.gauss(0, 0.2) for _ in ts))], "t")
        ev = await recv(watch)
        assert ev["topic"] == "samples" and len(ev["data"]["points"]) == 100
        await engine.ingest([SeriesSamples(LATENCY, (t0 + 100, t0 + 101), (55.0, 60.0))], "t")
        topics: list[str] = []
        incident: dict[str, Any] | None = None
        deadline = time.monotonic() + 15
        while incident is None and time.monotonic() < deadline:
            ev = await recv(watch, timeout=15)
            topics.append(ev["topic"])
            if ev["topic"] == "incidents":
                incident = ev
        assert incident is not None, topics
        assert "samples" in topics and "anomalies" in topics
        assert incident["data"]["event"] == "opened" and incident["service"] == "checkout"
        assert incident["data"]["incident"]["series"] == [LATENCY.key]
    finally:
        await engine.stop()


async def test_live_off_builds_no_hub(tmp_path: Path) -> None:
    engine = Engine(settings(tmp_path, live={"enabled": False}))
    assert engine.live is None
