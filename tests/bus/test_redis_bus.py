"""What the Redis Streams bus does beyond the contract (tests/bus/test_bus_contract.py runs that on it):
several buses, as in several engine processes, on one Redis; what the streams hold; payloads of every
engine type; and failure modes.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis
from tests.bus.test_codec import anomaly, incident, samples

from opsmind.bus import Message, consume
from opsmind.bus.redis_streams import SPACE_POLL_S, RedisBus
from opsmind.config import BusSettings
from opsmind.incidents.stage import IncidentEvent
from opsmind.predict.capacity import CapacityModel
from opsmind.predict.stage import LoadPrediction
from opsmind.telemetry import Telemetry
from opsmind.types import Event

TOPIC = "events"

MakeBus = Callable[..., RedisBus]


@pytest.fixture
async def make_bus(redis_prefix: tuple[str, str]) -> AsyncIterator[MakeBus]:
    """Buses on the test's Redis prefix, each with its own telemetry, as separate processes would have;
    all closed after the test."""
    url, prefix = redis_prefix
    made: list[RedisBus] = []

    def make(**overrides: Any) -> RedisBus:
        bus = RedisBus(BusSettings(**overrides), Telemetry(), url=url, prefix=prefix)
        made.append(bus)
        return bus

    yield make
    for bus in made:
        await bus.close()


@pytest.fixture
def raw(redis_prefix: tuple[str, str]) -> redis.Redis:
    """A plain client onto the test's Redis, to look at the streams behind the bus."""
    return redis.Redis.from_url(redis_prefix[0])


def key(bus: RedisBus, topic: str = TOPIC) -> str:
    return f"{bus.prefix}:{topic}"


def ids(messages: list[Message]) -> list[int]:
    return [m.id for m in messages]


@pytest.mark.redis
async def test_ids_are_the_stream_sequence_and_acked_entries_leave_the_stream(
    make_bus: MakeBus, raw: redis.Redis
) -> None:
    bus = make_bus()
    a, b = bus.subscribe(TOPIC, "a"), bus.subscribe(TOPIC, "b")
    published = [await bus.publish(TOPIC, n) for n in range(3)]
    assert published == [1, 2, 3]
    assert [entry_id for entry_id, _ in raw.xrange(key(bus))] == [b"0-1", b"0-2", b"0-3"]
    await a.ack(*ids(await a.fetch(10, timeout=0)))
    assert raw.xlen(key(bus)) == 3 == bus.backlog(TOPIC), "group b has read nothing yet"
    got = await b.fetch(2, timeout=0)
    await b.ack(*ids(got))
    assert raw.xlen(key(bus)) == 1 == bus.backlog(TOPIC)
    await b.ack(*ids(await b.fetch(timeout=0)))
    assert raw.xlen(key(bus)) == 0 == bus.backlog(TOPIC)
    assert await bus.publish(TOPIC, "next") == 4, "ids keep increasing over an empty stream"


@pytest.mark.redis
async def test_a_full_stream_never_holds_more_than_max_backlog(make_bus: MakeBus, raw: redis.Redis) -> None:
    producers = [make_bus(max_backlog=5, overflow="shed") for _ in range(3)]
    producers[0].subscribe(TOPIC, "slow")
    results = await asyncio.gather(*(p.publish(TOPIC, n) for n in range(20) for p in producers))
    assert sum(r is not None for r in results) == 5
    assert raw.xlen(key(producers[0])) == 5
    shed = sum(p.telemetry.value("opsmind_bus_shed_messages_total", {"topic": TOPIC}) for p in producers)
    assert shed == 55


@pytest.mark.redis
async def test_two_buses_in_one_group_share_the_work_and_each_message_is_delivered_once(
    make_bus: MakeBus, raw: redis.Redis
) -> None:
    one, two = make_bus(), make_bus()
    a, b = one.subscribe(TOPIC, "g", "a"), two.subscribe(TOPIC, "g", "b")
    published = [await one.publish(TOPIC, n) for n in range(10)]
    first, second = await a.fetch(4, timeout=0), await b.fetch(10, timeout=0)
    assert ids(first) == published[:4] and ids(second) == published[4:]
    await a.ack(*ids(first))
    await b.ack(*ids(second))

    # Now as engines run: a consume loop in each process, producers in both.
    handled: dict[str, list[int]] = {"a": [], "b": []}

    def handler_for(name: str) -> Callable[[Message], Any]:
        async def handle(msg: Message) -> None:
            handled[name].append(msg.payload)
            await asyncio.sleep(0.001)  # some work, so that neither consumer can take everything

        return handle

    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(consume(a, handler_for("a"), stop=stop, batch=5)),
        asyncio.create_task(consume(b, handler_for("b"), stop=stop, batch=5)),
    ]
    for n in range(200):
        await (one if n % 2 else two).publish(TOPIC, n)
    deadline = time.monotonic() + 10
    while len(handled["a"]) + len(handled["b"]) < 200:
        assert time.monotonic() < deadline, "not every message was handled"
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    counts = Counter(handled["a"] + handled["b"])
    assert sorted(counts) == list(range(200)) and set(counts.values()) == {1}, "each message exactly once"
    assert handled["a"] and handled["b"], "both processes got work"
    assert raw.xlen(key(one)) == 0


@pytest.mark.redis
async def test_a_consumer_that_dies_without_acking_has_its_messages_redelivered_to_another(
    make_bus: MakeBus, raw: redis.Redis
) -> None:
    doomed_bus, survivor_bus = make_bus(ack_timeout_s=0.3), make_bus(ack_timeout_s=0.3)
    doomed = doomed_bus.subscribe(TOPIC, "g", "doomed")
    survivor = survivor_bus.subscribe(TOPIC, "g", "survivor")
    published = [await doomed_bus.publish(TOPIC, f"job {n}") for n in range(3)]
    assert ids(await doomed.fetch(10, timeout=0)) == published
    await doomed_bus.close()  # the process dies holding three unacked messages
    assert await survivor.fetch(timeout=0) == [], "still within the ack timeout"
    assert await survivor_bus.pending(TOPIC, "g") == dict.fromkeys(published, ("doomed", 1))

    started = time.monotonic()
    again = await survivor.fetch(10, timeout=5)
    assert 0.2 < time.monotonic() - started < 1.5, "woken by the ack timeout, not by the fetch timeout"
    assert [(m.id, m.payload, m.deliveries) for m in again] == [
        (mid, f"job {n}", 2) for n, mid in enumerate(published)
    ]
    assert await survivor_bus.pending(TOPIC, "g") == dict.fromkeys(published, ("survivor", 2))
    value = survivor_bus.telemetry.value
    assert value("opsmind_bus_redelivered_messages_total", {"topic": TOPIC, "group": "g"}) == 3
    await survivor.ack(*ids(again))
    assert raw.xlen(key(survivor_bus)) == 0


@pytest.mark.redis
async def test_payloads_of_every_engine_type_travel_intact(make_bus: MakeBus) -> None:
    producer, consumer = make_bus(), make_bus()
    capacity = CapacityModel(ok=False, reason="too few samples", latency_slo=0.5)
    sent: dict[str, Any] = {
        "samples": samples(),
        "events": Event(at=1_700_000_000.0, service="api", reason="Deployed", message="v2"),
        "anomalies": anomaly(),
        "incidents": IncidentEvent("opened", incident()),
        "predictions": LoadPrediction(
            "api", 1_700_000_000.0, 60.0, 42.0, (43.0, float("nan")), "ets", 3, capacity
        ),
    }
    subs = {topic: consumer.subscribe(topic, "g") for topic in sent}
    for topic, payload in sent.items():
        assert await producer.publish(topic, payload) is not None
    for topic, payload in sent.items():
        (msg,) = await subs[topic].fetch(10, timeout=1)
        assert type(msg.payload) is type(payload)
        assert repr(msg.payload) == repr(payload)


@pytest.mark.redis
async def test_an_unencodable_payload_is_refused_before_it_reaches_redis(
    make_bus: MakeBus, raw: redis.Redis
) -> None:
    bus = make_bus()
    bus.subscribe(TOPIC, "g")
    with pytest.raises(TypeError, match="cannot encode"):
        await bus.publish(TOPIC, {"handle": object()})
    assert raw.xlen(key(bus)) == 0
    assert bus.telemetry.value("opsmind_bus_published_messages_total", {"topic": TOPIC}) == 0


@pytest.mark.redis
async def test_undecodable_entries_are_acked_dropped_and_counted(make_bus: MakeBus, raw: redis.Redis) -> None:
    bus = make_bus()
    sub = bus.subscribe(TOPIC, "g")
    raw.xadd(key(bus), {"p": b'{"$": "dataclass", "type": "os:system", "v": {}}'}, id="0-*")
    raw.xadd(key(bus), {"other": b"field"}, id="0-*")
    good = await bus.publish(TOPIC, "fine")
    assert ids(await sub.fetch(10, timeout=0)) == [good]
    value = bus.telemetry.value("opsmind_bus_undecodable_messages_total", {"topic": TOPIC, "group": "g"})
    assert value == 2
    await sub.ack(good)
    assert raw.xlen(key(bus)) == 0


@pytest.mark.redis
async def test_accepted_messages_outlive_every_bus(make_bus: MakeBus) -> None:
    first = make_bus()
    first.subscribe(TOPIC, "g")
    mid = await first.publish(TOPIC, "kept")
    await first.close()
    later = make_bus()
    got = await later.subscribe(TOPIC, "g").fetch(timeout=1)
    assert [(m.id, m.payload) for m in got] == [(mid, "kept")]
    assert later.backlog(TOPIC) == 1, "subscribe reads the backlog left behind"


@pytest.mark.redis
async def test_a_blocked_producer_sees_space_freed_by_another_process(make_bus: MakeBus) -> None:
    producer = make_bus(max_backlog=1, overflow="block", block_timeout_s=5)
    consumer = make_bus(max_backlog=1)
    sub = consumer.subscribe(TOPIC, "g")
    await producer.publish(TOPIC, 1)
    blocked = asyncio.create_task(producer.publish(TOPIC, 2))
    await asyncio.sleep(3 * SPACE_POLL_S)
    assert not blocked.done()
    await sub.ack(*ids(await sub.fetch(timeout=0)))
    started = time.monotonic()
    assert await asyncio.wait_for(blocked, 2) is not None
    assert time.monotonic() - started < 10 * SPACE_POLL_S


@pytest.mark.redis
async def test_a_group_deleted_behind_the_bus_is_created_again(make_bus: MakeBus, raw: redis.Redis) -> None:
    bus = make_bus()
    sub = bus.subscribe(TOPIC, "g")
    waiting = asyncio.create_task(sub.fetch(timeout=3))
    await asyncio.sleep(0.05)
    raw.delete(key(bus))  # as after a restart of Redis without persistence
    await asyncio.sleep(0.05)
    assert not waiting.done(), "the waiting fetch carries on"
    await bus.publish(TOPIC, "after")
    got = await asyncio.wait_for(waiting, 3)
    assert [m.payload for m in got] == ["after"]


@pytest.mark.redis
async def test_fetch_timeouts_are_kept_to_the_millisecond_not_to_redis_cron_ticks(make_bus: MakeBus) -> None:
    # Redis times a blocked XREADGROUP out only on its cron tick (100 ms at the default hz); the bus
    # ends the wait itself. Ten 10 ms waits would take about half a second on the ticks.
    sub = make_bus().subscribe(TOPIC, "g")
    started = time.monotonic()
    for _ in range(10):
        assert await sub.fetch(timeout=0.01) == []
    assert time.monotonic() - started < 0.4


@pytest.mark.redis
async def test_stopping_a_consumer_mid_wait_leaves_the_bus_usable(make_bus: MakeBus) -> None:
    bus = make_bus()
    sub = bus.subscribe(TOPIC, "g")
    handled: list[Any] = []

    async def handle(msg: Message) -> None:
        handled.append(msg.payload)

    for _ in range(3):
        stop = asyncio.Event()
        task = asyncio.create_task(consume(sub, handle, stop=stop))
        await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, 1)
    await bus.publish(TOPIC, "after")
    assert [m.payload for m in await sub.fetch(timeout=1)] == ["after"]


async def test_an_unreachable_server_fails_quickly_with_a_clear_error() -> None:
    started = time.monotonic()
    with pytest.raises(ConnectionError, match=r"cannot reach Redis at redis://u:\*\*\*@127\.0\.0\.1:1/0"):
        RedisBus(BusSettings(), Telemetry(), url="redis://u:secret@127.0.0.1:1/0")
    assert time.monotonic() - started < 3


@pytest.mark.redis
async def test_a_cancelled_fetch_ends_at_once_whenever_the_cancel_arrives(make_bus: MakeBus) -> None:
    # A cancellation that arrived during a call to Redis could be lost: the fetch then blocked for the
    # next message (timeout=None: for ever) or a whole MAX_BLOCK_S, and a consumer told to stop hung
    # (seen once in CI, in the two-buses test above). Cancel at random moments, with messages or not.
    bus = make_bus()
    sub = bus.subscribe(TOPIC, "g", "c")
    rng = random.Random(7)
    for n in range(300):
        if rng.random() < 0.5:
            await bus.publish(TOPIC, n)
        fetching = asyncio.ensure_future(sub.fetch(5, timeout=None))
        await asyncio.sleep(rng.random() * 0.01)
        fetching.cancel()
        started = time.monotonic()
        done, _ = await asyncio.wait({fetching}, timeout=2.0)
        assert done, f"cancelled fetch {n} still running after 2 s"
        assert time.monotonic() - started < 1.0, (
            f"cancelled fetch {n} took {time.monotonic() - started:.1f} s"
        )
        if not fetching.cancelled() and (got := fetching.result()):
            await sub.ack(*ids(got))
