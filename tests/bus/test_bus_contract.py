"""The bus contract, run against every backend through the ``bus_factory`` fixture.

A backend plugs in by adding a branch to ``bus_factory`` that builds a :class:`Harness`: the bus, the
telemetry it reports to, ``advance`` which lets the ack timeout pass, and ``settle`` which lets work
already set in motion finish. The memory bus runs on simulated time, and everything it does in reaction
to a call happens within a few turns of the event loop. The Redis bus measures the ack timeout in real
time on the server, so a test that asks for an ack timeout gets a short real one and ``advance`` sleeps
just past it; and an ack or a fetch is a round trip to Redis, so ``settle`` also gives it a few real
milliseconds. The assertions are the same for every backend.

The Redis cases are marked ``redis`` and need the server of ``OPSMIND_TEST_REDIS_URL`` (see
tests/bus/conftest.py); each bus works under a prefix of its own, deleted after the test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from tests.bus.conftest import delete_prefix, need_redis, new_prefix

from opsmind.bus import Bus, MemoryBus, Message, consume
from opsmind.bus.redis_streams import RedisBus
from opsmind.clock import SimClock
from opsmind.config import BusSettings
from opsmind.telemetry import Telemetry

# Not "samples": the default settings override its overflow policy, and these tests set it explicitly.
TOPIC = "events"

# The real ack timeout of the Redis bus in a test that sets one: long enough for a test's immediate
# steps to finish well within it, short enough that letting it pass a few times costs about a second.
REDIS_ACK_TIMEOUT_S = 0.25
# Redis counts idle time in whole milliseconds; sleeping a little longer makes sure it has passed there.
REDIS_IDLE_MARGIN_S = 0.005
# Time for replies to round trips already under way (an ack after a handler returned, say).
REDIS_SETTLE_S = 0.01


async def settle() -> None:
    """Give other tasks a few turns, enough for a woken task to run until it waits again."""
    for _ in range(10):
        await asyncio.sleep(0)


@dataclass
class Harness:
    """A bus under test plus what the tests need to observe and drive it."""

    bus: Bus
    telemetry: Telemetry
    settings: BusSettings
    advance: Callable[[float], Awaitable[None]]
    settle: Callable[[], Awaitable[None]] = settle

    async def pass_ack_timeout(self) -> None:
        """Let just over one ack timeout elapse, so every pending message becomes claimable."""
        await self.advance(self.settings.ack_timeout_s + 0.001)

    def metric(self, name: str, **labels: str) -> float:
        return self.telemetry.value(name, labels)


Factory = Callable[..., Harness]


async def redis_advance(seconds: float) -> None:
    await asyncio.sleep(seconds + REDIS_IDLE_MARGIN_S)


async def redis_settle() -> None:
    await settle()
    await asyncio.sleep(REDIS_SETTLE_S)
    await settle()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def bus_factory(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    """Build harnesses from ``BusSettings`` overrides; every bus built is closed after the test."""
    made: list[Harness] = []
    prefixes: list[str] = []
    url = need_redis() if request.param == "redis" else ""

    def make(**overrides: Any) -> Harness:
        if request.param == "redis" and "ack_timeout_s" in overrides:
            overrides = {**overrides, "ack_timeout_s": REDIS_ACK_TIMEOUT_S}
        settings = BusSettings(**overrides)
        telemetry = Telemetry()
        if request.param == "memory":
            clock = SimClock()
            harness = Harness(MemoryBus(settings, telemetry, clock), telemetry, settings, clock.advance)
        elif request.param == "redis":
            prefixes.append(new_prefix())
            bus = RedisBus(settings, telemetry, url=url, prefix=prefixes[-1])
            harness = Harness(bus, telemetry, settings, redis_advance, redis_settle)
        else:  # pragma: no cover - a new backend adds its branch here
            raise AssertionError(f"unknown backend {request.param}")
        made.append(harness)
        return harness

    yield make
    for harness in made:
        await harness.bus.close()
    for prefix in prefixes:
        delete_prefix(url, prefix)


async def eventually(condition: Callable[[], bool], timeout: float = 1.0) -> None:
    """Yield to the event loop until ``condition`` holds, failing after ``timeout`` real seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.001)


def ids(messages: list[Message]) -> list[int]:
    return [m.id for m in messages]


async def put(bus: Bus, payload: Any, topic: str = TOPIC) -> int:
    """Publish a message that must be accepted, and return its id."""
    mid = await bus.publish(topic, payload)
    assert mid is not None, "the message was shed"
    return mid


async def test_publish_returns_increasing_ids_and_payloads_arrive_in_order(bus_factory: Factory) -> None:
    h = bus_factory()
    sub = h.bus.subscribe(TOPIC, "g")
    published = [await put(h.bus, {"n": n}) for n in range(3)]
    assert published == sorted(published) and len(set(published)) == 3
    got = await sub.fetch(10, timeout=0)
    assert ids(got) == published
    assert [m.payload for m in got] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert all(m.topic == TOPIC and m.deliveries == 1 for m in got)
    assert h.metric("opsmind_bus_published_messages_total", topic=TOPIC) == 3


async def test_new_group_starts_at_the_end_and_no_group_keeps_nothing(bus_factory: Factory) -> None:
    h = bus_factory()
    assert await h.bus.publish(TOPIC, "before any group") is not None
    assert h.bus.backlog(TOPIC) == 0
    sub = h.bus.subscribe(TOPIC, "g")
    assert await sub.fetch(timeout=0) == []
    after = await put(h.bus, "after")
    assert ids(await sub.fetch(timeout=0)) == [after]


async def test_fan_out_every_group_gets_every_message(bus_factory: Factory) -> None:
    h = bus_factory()
    a, b = h.bus.subscribe(TOPIC, "a"), h.bus.subscribe(TOPIC, "b")
    published = [await put(h.bus, n) for n in range(4)]
    got_a, got_b = await a.fetch(10, timeout=0), await b.fetch(10, timeout=0)
    assert ids(got_a) == ids(got_b) == published
    await a.ack(*ids(got_a))
    assert h.bus.backlog(TOPIC) == 4, "group b has not acked yet"
    await b.ack(*ids(got_b))
    assert h.bus.backlog(TOPIC) == 0


async def test_leave_frees_what_only_the_group_owed_and_keeps_what_others_owe(bus_factory: Factory) -> None:
    h = bus_factory()
    stays, goes = h.bus.subscribe(TOPIC, "stays"), h.bus.subscribe(TOPIC, "goes")
    published = [await put(h.bus, n) for n in range(6)]
    await stays.ack(*ids(await stays.fetch(4, timeout=0)))  # 1-4 acked by the group that stays
    got = await goes.fetch(3, timeout=0)  # 1-3 pending in the group that leaves, 4-6 never read by it
    assert ids(got) == published[:3]
    assert h.bus.backlog(TOPIC) == 6
    await h.bus.leave(TOPIC, "goes")
    assert h.bus.backlog(TOPIC) == 2, "only what the remaining group still owes is kept"
    assert ids(await stays.fetch(10, timeout=0)) == published[4:]
    assert await goes.fetch(10, timeout=0) == [], "a subscription of a group that left fetches nothing"
    await h.bus.leave(TOPIC, "goes")  # leaving twice, or a group that never was, does nothing
    await h.bus.leave(TOPIC, "never")
    await h.bus.leave("no-such-topic", "goes")


async def test_leave_wakes_a_waiting_fetch_and_frees_a_blocked_producer(bus_factory: Factory) -> None:
    h = bus_factory(max_backlog=2, overflow="block", block_timeout_s=5)
    sub = h.bus.subscribe(TOPIC, "g")
    await put(h.bus, 1)
    await put(h.bus, 2)
    blocked = asyncio.create_task(h.bus.publish(TOPIC, 3))
    other = h.bus.subscribe("other", "g")
    waiting = asyncio.create_task(other.fetch(timeout=None))
    await h.settle()
    assert not blocked.done() and not waiting.done()
    await h.bus.leave(TOPIC, "g")
    assert await asyncio.wait_for(blocked, 2.0) is not None, "the full topic had room once the group left"
    assert h.bus.backlog(TOPIC) == 0, "with no group left the topic keeps nothing"
    await h.bus.leave("other", "g")
    assert await asyncio.wait_for(waiting, 2.0) == []
    assert await sub.fetch(timeout=0) == []


async def test_a_group_joined_again_after_leaving_starts_at_the_end(bus_factory: Factory) -> None:
    h = bus_factory()
    keep = h.bus.subscribe(TOPIC, "keep")
    h.bus.subscribe(TOPIC, "live")
    await put(h.bus, "while joined")
    await h.bus.leave(TOPIC, "live")
    await put(h.bus, "while away")
    again = h.bus.subscribe(TOPIC, "live")
    later = await put(h.bus, "after joining again")
    assert ids(await again.fetch(10, timeout=0)) == [later]
    assert len(await keep.fetch(10, timeout=0)) == 3


async def test_load_sharing_between_consumers_of_one_group(bus_factory: Factory) -> None:
    h = bus_factory()
    c1, c2 = h.bus.subscribe(TOPIC, "g", "c1"), h.bus.subscribe(TOPIC, "g", "c2")
    published = [await put(h.bus, n) for n in range(4)]
    first, second = await c1.fetch(2, timeout=0), await c2.fetch(2, timeout=0)
    assert len(first) == len(second) == 2
    assert sorted(ids(first) + ids(second)) == published
    assert await c1.fetch(timeout=0) == [] and await c2.fetch(timeout=0) == []


async def test_waiting_consumers_of_one_group_share_a_message(bus_factory: Factory) -> None:
    h = bus_factory()
    subs = [h.bus.subscribe(TOPIC, "g", f"c{i}") for i in range(2)]
    waiting = [asyncio.create_task(s.fetch(timeout=0.05)) for s in subs]
    await h.settle()
    mid = await put(h.bus, "x")
    results = await asyncio.gather(*waiting)
    assert sorted(ids(results[0]) + ids(results[1])) == [mid]


async def test_unacked_message_is_redelivered_after_ack_timeout(bus_factory: Factory) -> None:
    h = bus_factory(ack_timeout_s=5)
    c1, c2 = h.bus.subscribe(TOPIC, "g", "c1"), h.bus.subscribe(TOPIC, "g", "c2")
    mid = await put(h.bus, "work")
    assert ids(await c1.fetch(timeout=0)) == [mid]
    assert await c2.fetch(timeout=0) == [], "still within the ack timeout"
    # A consumer already waiting must be woken by the passing of time alone.
    waiting = asyncio.create_task(c2.fetch(timeout=10.0))
    await h.settle()
    assert not waiting.done()
    await h.pass_ack_timeout()
    again = await asyncio.wait_for(waiting, 0.5)
    assert [(m.id, m.payload, m.deliveries) for m in again] == [(mid, "work", 2)]
    assert h.metric("opsmind_bus_redelivered_messages_total", topic=TOPIC, group="g") == 1
    await c2.ack(mid)
    assert h.bus.backlog(TOPIC) == 0


async def test_ack_prevents_redelivery(bus_factory: Factory) -> None:
    h = bus_factory(ack_timeout_s=5)
    sub = h.bus.subscribe(TOPIC, "g")
    mid = await put(h.bus, "work")
    assert ids(await sub.fetch(timeout=0)) == [mid]
    await sub.ack(mid)
    await sub.ack(mid)  # acking twice is harmless
    await h.pass_ack_timeout()
    assert await sub.fetch(timeout=0) == []
    assert h.bus.backlog(TOPIC) == 0


async def test_block_policy_makes_the_producer_wait_for_an_ack(bus_factory: Factory) -> None:
    h = bus_factory(max_backlog=2, overflow="block", block_timeout_s=5)
    sub = h.bus.subscribe(TOPIC, "g")
    first = await put(h.bus, 1)
    await h.bus.publish(TOPIC, 2)
    producer = asyncio.create_task(h.bus.publish(TOPIC, 3))
    await asyncio.sleep(0.02)
    assert not producer.done(), "the topic is full, the producer must wait"
    got = await sub.fetch(1, timeout=0)
    assert ids(got) == [first]
    await h.settle()
    assert not producer.done(), "fetching alone frees nothing; only an ack does"
    await sub.ack(first)
    third = await asyncio.wait_for(producer, 1.0)
    assert third is not None
    assert h.bus.backlog(TOPIC) == 2
    assert h.metric("opsmind_bus_shed_messages_total", topic=TOPIC) == 0


async def test_block_policy_sheds_after_the_block_timeout(bus_factory: Factory) -> None:
    h = bus_factory(max_backlog=1, overflow="block", block_timeout_s=0.05)
    h.bus.subscribe(TOPIC, "g")
    assert await h.bus.publish(TOPIC, 1) is not None
    assert await asyncio.wait_for(h.bus.publish(TOPIC, 2), 1.0) is None
    assert h.metric("opsmind_bus_shed_messages_total", topic=TOPIC) == 1


async def test_shed_policy_drops_new_messages_and_counts_them(bus_factory: Factory) -> None:
    h = bus_factory(max_backlog=3, overflow="shed")
    sub = h.bus.subscribe(TOPIC, "g")
    results = [await h.bus.publish(TOPIC, n) for n in range(5)]
    assert [r is None for r in results] == [False, False, False, True, True]
    assert h.metric("opsmind_bus_shed_messages_total", topic=TOPIC) == 2
    assert [m.payload for m in await sub.fetch(10, timeout=0)] == [0, 1, 2], "the oldest are kept"


async def test_topic_overflow_overrides_the_policy_per_topic(bus_factory: Factory) -> None:
    h = bus_factory(max_backlog=1, overflow="block", block_timeout_s=5, topic_overflow={"lossy": "shed"})
    h.bus.subscribe("lossy", "g")
    h.bus.subscribe(TOPIC, "g")
    await put(h.bus, 1, topic="lossy")
    await put(h.bus, 1)
    assert await asyncio.wait_for(h.bus.publish("lossy", 2), 0.5) is None, "shed at once"
    blocked = asyncio.create_task(h.bus.publish(TOPIC, 2))
    await h.settle()
    assert not blocked.done(), "the other topic keeps the default policy"
    blocked.cancel()
    assert h.metric("opsmind_bus_shed_messages_total", topic="lossy") == 1


async def test_memory_stays_bounded_under_a_flood(bus_factory: Factory) -> None:
    h = bus_factory(max_backlog=10, overflow="shed")
    h.bus.subscribe(TOPIC, "slow")
    fast = h.bus.subscribe(TOPIC, "fast")
    for n in range(100):
        await h.bus.publish(TOPIC, n)
        assert h.bus.backlog(TOPIC) <= 10
        await fast.ack(*ids(await fast.fetch(timeout=0)))
    assert h.bus.backlog(TOPIC) == 10, "the slow group holds the backlog"
    assert h.metric("opsmind_bus_shed_messages_total", topic=TOPIC) == 90
    assert h.metric("opsmind_bus_backlog_messages", topic=TOPIC) == 10
    if isinstance(h.bus, MemoryBus):
        assert sum(len(t.log) for t in h.bus._topics.values()) <= 10


async def test_close_wakes_a_waiting_fetch_and_refuses_publishes(bus_factory: Factory) -> None:
    h = bus_factory(max_backlog=1, overflow="block", block_timeout_s=5)
    sub = h.bus.subscribe(TOPIC, "g")
    other = h.bus.subscribe("other", "g")
    await h.bus.publish(TOPIC, 1)
    blocked = asyncio.create_task(h.bus.publish(TOPIC, 2))
    waiting = asyncio.create_task(other.fetch(timeout=None))
    await h.settle()
    assert not waiting.done() and not blocked.done()
    await h.bus.close()
    assert await asyncio.wait_for(waiting, 1.0) == []
    with pytest.raises(RuntimeError, match="closed"):
        await asyncio.wait_for(blocked, 1.0)
    with pytest.raises(RuntimeError, match="closed"):
        await h.bus.publish(TOPIC, 3)
    assert await sub.fetch(timeout=None) == []


async def test_consume_acks_successes_retries_failures_and_dead_letters_poison(bus_factory: Factory) -> None:
    h = bus_factory(ack_timeout_s=5)
    sub = h.bus.subscribe(TOPIC, "g")
    attempts: dict[str, int] = {"ok": 0, "flaky": 0, "poison": 0}
    errors: list[tuple[str, int]] = []

    async def handler(msg: Message) -> None:
        attempts[msg.payload] += 1
        if msg.payload == "poison" or (msg.payload == "flaky" and msg.deliveries == 1):
            raise ValueError(msg.payload)

    def on_error(msg: Message, exc: BaseException) -> None:
        errors.append((msg.payload, msg.deliveries))

    stop = asyncio.Event()
    task = asyncio.create_task(consume(sub, handler, on_error=on_error, stop=stop, telemetry=h.telemetry))
    for payload in ("ok", "flaky", "poison"):
        await h.bus.publish(TOPIC, payload)
    await eventually(lambda: attempts["poison"] == 1)
    await h.settle()
    assert attempts == {"ok": 1, "flaky": 1, "poison": 1}
    assert h.bus.backlog(TOPIC) == 2, "only the success was acked"

    for delivery in range(2, 6):
        await h.pass_ack_timeout()

        def poison_attempted(d: int = delivery) -> bool:
            return attempts["poison"] == d

        await eventually(poison_attempted)
        await h.settle()

    assert attempts == {"ok": 1, "flaky": 2, "poison": 5}
    assert errors == [("flaky", 1), ("poison", 1), *[("poison", d) for d in range(2, 6)]]
    assert h.metric("opsmind_bus_dead_letters_total", topic=TOPIC, group="g") == 1
    assert h.bus.backlog(TOPIC) == 0, "the dead letter was acked"

    stop.set()
    await asyncio.wait_for(task, 1.0)


async def test_consume_returns_when_the_bus_closes(bus_factory: Factory) -> None:
    h = bus_factory()
    handled: list[Any] = []

    async def handler(msg: Message) -> None:
        handled.append(msg.payload)

    task = asyncio.create_task(consume(h.bus.subscribe(TOPIC, "g"), handler, stop=asyncio.Event(), batch=2))
    for n in range(5):
        await h.bus.publish(TOPIC, n)
    await eventually(lambda: len(handled) == 5)
    await h.bus.close()
    await asyncio.wait_for(task, 1.0)
    assert handled == [0, 1, 2, 3, 4]


async def test_consume_dead_letters_a_message_whose_consumers_kept_dying(bus_factory: Factory) -> None:
    h = bus_factory(ack_timeout_s=5)
    crashing = h.bus.subscribe(TOPIC, "g", "crashing")
    mid = await put(h.bus, "kills its consumer")
    # Five deliveries that were never acked nor reported, as if each consumer died mid-message.
    for _ in range(5):
        assert ids(await crashing.fetch(timeout=0)) == [mid]
        await h.pass_ack_timeout()
    handled: list[Message] = []

    async def handler(msg: Message) -> None:
        handled.append(msg)

    stop = asyncio.Event()
    task = asyncio.create_task(
        consume(h.bus.subscribe(TOPIC, "g", "next"), handler, stop=stop, telemetry=h.telemetry)
    )
    await eventually(lambda: h.bus.backlog(TOPIC) == 0)
    assert handled == [], "the sixth delivery goes straight to the dead letters"
    assert h.metric("opsmind_bus_dead_letters_total", topic=TOPIC, group="g") == 1
    stop.set()
    await asyncio.wait_for(task, 1.0)
