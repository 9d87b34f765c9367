"""The in-process event bus: Redis Streams consumer-group semantics on asyncio, for the embedded set-up.

Each topic is an append-only log with increasing integer ids starting at 1. A consumer group is created
by its first ``subscribe`` and starts at the topic's current end, so it sees only messages published
after it was created. Each group remembers the last id it handed out and a pending-entries list (id ->
consumer, delivery count, time of last delivery). ``fetch`` first claims this group's pending messages
whose ack timeout expired (like ``XAUTOCLAIM``: the fetching consumer takes them over and the delivery
count goes up), then hands out new messages. ``ack`` removes a message from the group's pending list, and
a message leaves the log once every group that existed when it was published has acked it (or left:
``leave`` deletes a group and what it alone still owed).

Time: the ack timeout is measured on the injected :class:`~opsmind.clock.Clock` (so a replay on
``SimClock`` redelivers when simulated time passes), while the ``timeout`` of ``fetch`` and the block
timeout of a full topic are real seconds, because they bound how long a task stays parked.

A topic without any group keeps nothing: ``publish`` still returns an id, but the message is dropped at
once and counted in ``opsmind_bus_unrouted_messages_total``, since a group created later starts at the
end of the topic and could never read it. Subscribe every consumer group before starting producers.

The backlog of a topic is the number of messages the log retains, i.e. those some group has not acked
yet. It never exceeds ``max_backlog``: a publish that would exceed it waits (``block``, at most
``block_timeout_s``, then sheds) or is shed at once (``shed``) and returns ``None``. The policy is
``settings.topic_overflow[topic]`` when the topic is listed there, else ``settings.overflow``.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opsmind.bus.metrics import BusMetrics
from opsmind.bus.protocols import Message
from opsmind.clock import Clock, RealClock
from opsmind.config import BusSettings
from opsmind.telemetry import Telemetry

__all__ = ["MemoryBus", "MemorySubscription"]


@dataclass(slots=True)
class _Entry:
    """A message in a topic log and how many groups still have to ack it."""

    payload: Any
    groups_left: int


@dataclass(slots=True)
class _Pending:
    """A delivered, not yet acked message of one group."""

    consumer: str
    deliveries: int
    delivered_at: float


class _Group:
    """The read position and pending-entries list of one consumer group."""

    def __init__(self, name: str, last_delivered: int) -> None:
        self.name = name
        self.last_delivered = last_delivered
        # Kept in order of last delivery (a redelivery moves the entry to the end), so the entries whose
        # ack timeout expired are always a prefix and the first entry tells when the next one expires.
        self.pending: OrderedDict[int, _Pending] = OrderedDict()
        self.waiters: set[asyncio.Future[None]] = set()
        self.left = False


class _Topic:
    """One append-only log, its groups and the producers waiting for space."""

    def __init__(self, name: str, bus: MemoryBus) -> None:
        self.name = name
        self.log: dict[int, _Entry] = {}
        self.next_id = 1
        self.groups: dict[str, _Group] = {}
        self.space_waiters: set[asyncio.Future[None]] = set()
        self.overflow = bus.settings.topic_overflow.get(name, bus.settings.overflow)
        # Label children are looked up once per topic instead of on every message.
        self.published = bus._published.labels(topic=name)
        self.shed = bus._shed.labels(topic=name)
        self.unrouted = bus._unrouted.labels(topic=name)
        self.backlog_gauge = bus._backlog.labels(topic=name)


def _wake(waiters: set[asyncio.Future[None]]) -> None:
    """Resolve every waiting future of ``waiters`` and forget them."""
    for fut in waiters:
        if not fut.done():
            fut.set_result(None)
    waiters.clear()


class MemorySubscription:
    """One consumer of one group on one topic; a handle onto the bus's shared group state."""

    def __init__(self, bus: MemoryBus, topic: str, group: str, consumer: str) -> None:
        self.topic = topic
        self.group = group
        self.consumer = consumer
        self._bus = bus

    async def fetch(self, max_messages: int = 100, timeout: float | None = 1.0) -> list[Message]:
        """Return up to ``max_messages`` expired pending or new messages, waiting up to ``timeout``
        real seconds (``None`` waits until a message arrives or the bus closes) for the first one.

        An empty list means the timeout passed or the bus was closed.
        """
        return await self._bus._fetch(self, max_messages, timeout)

    async def ack(self, *message_ids: int) -> None:
        """Mark messages as processed by this group; ids that are not pending in it are ignored."""
        self._bus._ack(self.topic, self.group, message_ids)

    def __repr__(self) -> str:
        return f"MemorySubscription(topic={self.topic!r}, group={self.group!r}, consumer={self.consumer!r})"


class MemoryBus:
    """An in-process, bounded implementation of the :class:`~opsmind.bus.protocols.Bus` contract.

    All state lives in the event loop's thread; the methods must be called from that loop. Metrics go to
    ``telemetry`` (a private one is created when none is given, reachable as ``bus.telemetry``).
    """

    def __init__(
        self,
        settings: BusSettings | None = None,
        telemetry: Telemetry | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings if settings is not None else BusSettings()
        self.telemetry = telemetry if telemetry is not None else Telemetry()
        self.clock: Clock = clock if clock is not None else RealClock()
        self._topics: dict[str, _Topic] = {}
        self._closed = False
        m = BusMetrics.of(self.telemetry)  # the same metrics on every backend
        self._published, self._shed, self._unrouted = m.published, m.shed, m.unrouted
        self._redelivered, self._backlog = m.redelivered, m.backlog

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def _topic(self, name: str) -> _Topic:
        topic = self._topics.get(name)
        if topic is None:
            topic = self._topics[name] = _Topic(name, self)
        return topic

    # -- producing -------------------------------------------------------------------------------------

    async def publish(self, topic: str, payload: Any) -> int | None:
        """Append ``payload`` to ``topic`` and return its id, or ``None`` when it was shed.

        Raises :class:`RuntimeError` when the bus is closed, also for a producer that was waiting for
        space when it closed.
        """
        self._check_open(topic)
        t = self._topic(topic)
        if not t.groups:
            return self._unrouted_id(t)
        if len(t.log) >= self.settings.max_backlog:
            if t.overflow == "shed" or not await self._wait_for_space(t):
                t.shed.inc()
                return None
            if not t.groups:  # the last group left while this producer waited
                return self._unrouted_id(t)
        mid = t.next_id
        t.next_id += 1
        # Counted against the groups that exist now: a group created later starts after this message.
        t.log[mid] = _Entry(payload, len(t.groups))
        t.published.inc()
        t.backlog_gauge.set(len(t.log))
        for group in t.groups.values():
            _wake(group.waiters)
        return mid

    @staticmethod
    def _unrouted_id(t: _Topic) -> int:
        # Nobody could ever read it (new groups start at the end), so keeping it would only cost memory.
        mid = t.next_id
        t.next_id += 1
        t.published.inc()
        t.unrouted.inc()
        return mid

    async def _wait_for_space(self, t: _Topic) -> bool:
        """Wait up to the block timeout until ``t`` has room; ``False`` when it stayed full."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.block_timeout_s
        while len(t.log) >= self.settings.max_backlog:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            fut: asyncio.Future[None] = loop.create_future()
            t.space_waiters.add(fut)
            try:
                await asyncio.wait({fut}, timeout=remaining)
            finally:
                t.space_waiters.discard(fut)
            self._check_open(t.name)
        return True

    def _check_open(self, topic: str) -> None:
        if self._closed:
            raise RuntimeError(f"the bus is closed; cannot publish to topic {topic!r}")

    # -- consuming -------------------------------------------------------------------------------------

    def subscribe(self, topic: str, group: str, consumer: str = "c0") -> MemorySubscription:
        """Join ``group`` on ``topic`` as ``consumer``, creating the group at the topic's current end.

        Subscribing again with the same names returns another handle onto the same state, which is how
        a restarted consumer picks up its pending messages.
        """
        if self._closed:
            raise RuntimeError(f"the bus is closed; cannot subscribe to topic {topic!r}")
        t = self._topic(topic)
        if group not in t.groups:
            t.groups[group] = _Group(group, last_delivered=t.next_id - 1)
        return MemorySubscription(self, topic, group, consumer)

    async def _fetch(
        self, sub: MemorySubscription, max_messages: int, timeout: float | None
    ) -> list[Message]:
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, got {max_messages}")
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + max(0.0, timeout)
        t = self._topics[sub.topic]
        group = t.groups.get(sub.group)
        while not self._closed and group is not None and not group.left:
            messages = self._collect(t, group, sub.consumer, max_messages)
            if messages:
                return messages
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                break
            await self._wait_for_messages(group, remaining)
        return []

    def _collect(self, t: _Topic, group: _Group, consumer: str, limit: int) -> list[Message]:
        """Claim expired pending messages, then take new ones, for ``consumer``; never waits."""
        now = self.clock.now()
        timeout = self.settings.ack_timeout_s
        out: list[Message] = []
        expired: list[int] = []
        for mid, p in group.pending.items():
            if len(expired) >= limit or now - p.delivered_at < timeout:
                break
            expired.append(mid)
        for mid in expired:
            p = group.pending[mid]
            p.consumer = consumer
            p.deliveries += 1
            p.delivered_at = now
            group.pending.move_to_end(mid)
            out.append(Message(mid, t.name, t.log[mid].payload, p.deliveries))
        if expired:
            self._redelivered.labels(topic=t.name, group=group.name).inc(len(expired))
        while len(out) < limit and group.last_delivered < t.next_id - 1:
            group.last_delivered += 1
            mid = group.last_delivered
            entry = t.log.get(mid)
            if entry is None:  # Unreachable while every later message counts this group; be defensive.
                continue
            group.pending[mid] = _Pending(consumer, 1, now)
            out.append(Message(mid, t.name, entry.payload, 1))
        return out

    async def _wait_for_messages(self, group: _Group, remaining: float | None) -> None:
        """Park until a publish, a close, the next pending expiry on the clock, or ``remaining`` seconds."""
        loop = asyncio.get_running_loop()
        notified: asyncio.Future[None] = loop.create_future()
        group.waiters.add(notified)
        waits: set[asyncio.Future[None]] = {notified}
        timer: asyncio.Task[None] | None = None
        if group.pending:
            first = next(iter(group.pending.values()))
            due = first.delivered_at + self.settings.ack_timeout_s - self.clock.now()
            # Sleeping on the injected clock (not a real-time poll) means a SimClock.advance wakes us.
            timer = asyncio.ensure_future(self.clock.sleep(max(0.0, due)))
            waits.add(timer)
        try:
            await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        finally:
            group.waiters.discard(notified)
            if timer is not None:
                timer.cancel()

    def _ack(self, topic: str, group_name: str, message_ids: Iterable[int]) -> None:
        t = self._topics.get(topic)
        group = t.groups.get(group_name) if t is not None else None
        if t is None or group is None:
            return
        freed = False
        for mid in message_ids:
            if group.pending.pop(mid, None) is None:
                continue  # Like XACK: acking an unknown or already acked id is not an error.
            entry = t.log[mid]
            entry.groups_left -= 1
            if entry.groups_left == 0:
                del t.log[mid]
                freed = True
        if freed:
            t.backlog_gauge.set(len(t.log))
            _wake(t.space_waiters)

    async def leave(self, topic: str, group: str) -> None:
        """Delete ``group`` from ``topic``; what only it had to ack leaves the log (see the protocol)."""
        t = self._topics.get(topic)
        g = t.groups.pop(group, None) if t is not None else None
        if t is None or g is None:
            return
        g.left = True
        _wake(g.waiters)
        owed = [*g.pending, *range(g.last_delivered + 1, t.next_id)]
        for mid in owed:
            entry = t.log.get(mid)
            if entry is None:
                continue
            entry.groups_left -= 1
            if entry.groups_left == 0:
                del t.log[mid]
        t.backlog_gauge.set(len(t.log))
        _wake(t.space_waiters)

    # -- inspection and shutdown -----------------------------------------------------------------------

    def backlog(self, topic: str) -> int:
        """Messages of ``topic`` some group has not acked yet, which is exactly what the log retains."""
        t = self._topics.get(topic)
        return 0 if t is None else len(t.log)

    def pending(self, topic: str, group: str) -> dict[int, tuple[str, int]]:
        """The pending entries of ``group`` as ``{id: (consumer, deliveries)}``, for tests and the API."""
        t = self._topics.get(topic)
        g = t.groups.get(group) if t is not None else None
        if g is None:
            return {}
        return {mid: (p.consumer, p.deliveries) for mid, p in g.pending.items()}

    async def close(self) -> None:
        """Stop the bus: waiting fetches return ``[]``, waiting and later publishes raise ``RuntimeError``.

        Closing twice is harmless. Retained messages are discarded with the bus; nothing is persisted.
        """
        self._closed = True
        for t in self._topics.values():
            _wake(t.space_waiters)
            for group in t.groups.values():
                _wake(group.waiters)
