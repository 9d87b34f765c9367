"""The event bus on Redis Streams, so that several engine processes share topics and consumer groups.

The semantics are :class:`~opsmind.bus.memory.MemoryBus`'s (read its docstring first); this module says
how each maps onto Redis and where the two differ.

Keys and ids. Topic ``t`` is the stream ``{prefix}:{t}``; a consumer group is a Redis consumer group of
that stream. Entries are added with the explicit id ``0-*``: the millisecond part is always 0 and Redis
numbers the entries 1, 2, 3, ... in its sequence part, which is the message id (``Message.id`` is the
sequence, ``ack`` turns it back into ``0-<id>``). So ids are small increasing integers as on the memory
bus, and they do not depend on the server's wall clock, which could step back. Needs Redis 7.0 or later.

Atomicity. Publish, fetch and ack each run one Lua script, so the checks and the change they guard are
one step on the server even with many producers and consumers in many processes:

* publish: a stream without groups keeps nothing (the entry is added and trimmed at once, so the ids
  still advance; counted as unrouted); a stream already holding ``max_backlog`` entries refuses the
  entry (the topic is full); otherwise ``XADD``.
* fetch: ``XAUTOCLAIM`` of the group's entries pending longer than the ack timeout (their delivery
  count read back with ``XPENDING``), then ``XREADGROUP >`` for new ones; when there is neither, the
  script also says how long until the next pending entry of the group times out, which bounds the wait.
* ack: ``XACK``, then ``XDEL`` of each entry every group of the stream has now acked (delivered to it
  and no longer pending). The stream therefore holds exactly the messages some group has not acked, its
  length is the backlog, and a full topic is ``XLEN >= max_backlog``: it never grows past that, without
  any trimming.
* leave: the entries the group owes (its pending ones and those after its last delivered id), then
  ``XGROUP DESTROY``, then ``XDEL`` of each of those entries no remaining group owes.

Groups. ``subscribe`` is synchronous in the protocol, so it creates the group (``XGROUP CREATE ... $
MKSTREAM``, an existing group is kept) with a small synchronous client: one round trip that blocks the
event loop briefly, once per subscription, and guarantees that the group exists, at the end of the
stream, when ``subscribe`` returns. A group that vanished later (Redis restarted without persistence,
or someone deleted the key) is created again at the end of the stream by the next fetch, with a warning.

Waiting. An empty fetch waits with ``XREADGROUP ... BLOCK`` on a connection of its own, at most until
its timeout, the next ack-timeout expiry of the group, or ``MAX_BLOCK_S``. Redis only times blocked
clients out on its cron tick (every 100 ms at the default ``hz``), so the wait is ended on time from
here with ``CLIENT UNBLOCK``, which makes the read return as if it had timed out; a reply already on its
way is still read, so no delivered message is dropped. A fetch cancelled during a call to Redis (a
consumer stopped while it waits, say) drops that connection; anything Redis delivered to it in that
instant stays pending and is redelivered after the ack timeout, as for a consumer that died.

Time. The ack timeout is measured by Redis, in real milliseconds of idle time, not on the injected
clock (Redis cannot see a :class:`~opsmind.clock.SimClock`): on simulated time, redelivery happens after
``ack_timeout_s`` real seconds. The clock is kept for parity with the memory bus, which uses it for
nothing else either. Fetch timeouts and the block timeout of a full topic are real seconds on both.

Backlog. ``backlog`` is synchronous in the protocol, so it returns the stream length as of this bus's
latest publish, fetch, ack or subscribe on the topic (each script returns it); the gauge
``opsmind_bus_backlog_messages`` reports the same value. Acks made by other processes show after this
process's next operation on the topic.

Backpressure across processes. A producer waiting for space on a full topic is woken at once by acks
made through the same bus; acks made by other processes are noticed by re-checking every
``SPACE_POLL_S``.

Payloads travel as JSON through :mod:`opsmind.bus.codec` (never pickle); a payload it cannot encode
raises ``TypeError`` from ``publish``. An entry that does not decode (written by something else, or a
type this version does not know) is logged, acked so it stops blocking the topic, and counted in
``opsmind_bus_undecodable_messages_total{topic,group}``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from opsmind.bus.backends import redacted
from opsmind.bus.codec import CodecError, decode, encode
from opsmind.bus.metrics import BusMetrics
from opsmind.bus.protocols import Message
from opsmind.clock import Clock, RealClock
from opsmind.config import BusSettings
from opsmind.telemetry import Telemetry

__all__ = ["MAX_BLOCK_S", "SPACE_POLL_S", "RedisBus", "RedisSubscription"]

log = logging.getLogger(__name__)

# The longest single blocking read: a consumer with nothing to wait for still hears from Redis this
# often, so a dead connection is found out and the socket timeout below never fires on a healthy one.
MAX_BLOCK_S = 5.0
# How often a producer blocked on a full topic re-checks it for acks made by other processes.
SPACE_POLL_S = 0.05
CONNECT_TIMEOUT_S = 5.0
COMMAND_TIMEOUT_S = MAX_BLOCK_S + 10.0
# Acks are sent in chunks so that one script call stays short on the server (it blocks every client).
ACK_CHUNK = 1000
MIN_REDIS = (7, 0)

PAYLOAD = b"p"

# publish outcomes, as the script returns them
_UNROUTED, _FULL, _ADDED = 0, 1, 2

_PUBLISH = """
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 or #redis.call('XINFO', 'GROUPS', key) == 0 then
  -- Nobody could read it (a new group starts at the end): add and trim at once, so the ids still advance.
  return {0, redis.call('XADD', key, 'MAXLEN', '0', '0-*', 'p', ''), 0}
end
local length = redis.call('XLEN', key)
if length >= tonumber(ARGV[2]) then
  return {1, '', length}
end
return {2, redis.call('XADD', key, '0-*', 'p', ARGV[1]), length + 1}
"""

_FETCH = """
local key, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local limit, idle = tonumber(ARGV[3]), tonumber(ARGV[4])
local claimed, deliveries = {}, {}
local cursor = '0-0'
repeat
  local r = redis.call('XAUTOCLAIM', key, group, consumer, idle, cursor, 'COUNT', limit - #claimed)
  cursor = r[1]
  for _, entry in ipairs(r[2]) do
    claimed[#claimed + 1] = entry
    deliveries[#deliveries + 1] = redis.call('XPENDING', key, group, entry[1], entry[1], 1)[1][4]
  end
until cursor == '0-0' or #claimed >= limit
local new = {}
if #claimed < limit then
  local r = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', limit - #claimed, 'STREAMS', key, '>')
  if r then new = r[1][2] end
end
-- Nothing to hand out: how long until the next pending entry times out (-1: none is pending). Exact
-- while the group has at most 1000 pending entries; beyond, a later one may expire first.
local wait = -1
if #claimed == 0 and #new == 0 then
  for _, p in ipairs(redis.call('XPENDING', key, group, '-', '+', 1000)) do
    local due = idle - p[3]
    if wait < 0 or due < wait then wait = due end
  end
end
return {claimed, deliveries, new, wait, redis.call('XLEN', key)}
"""

# Shared by the ack and leave scripts: the stream's groups, and whether one of them still owes an entry.
_GROUPS = """
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)%-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function read_groups(key)
  local groups = {}
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
    local name, last
    for i = 1, #g, 2 do
      if g[i] == 'name' then name = g[i + 1] elseif g[i] == 'last-delivered-id' then last = g[i + 1] end
    end
    local ms, seq = parse(last)
    groups[#groups + 1] = {name, ms, seq}
  end
  return groups
end
local function owed(key, groups, id)
  local ms, seq = parse(id)
  for _, g in ipairs(groups) do
    -- Still owed to g: not delivered to it yet, or delivered and not acked.
    if g[2] < ms or (g[2] == ms and g[3] < seq) or #redis.call('XPENDING', key, g[1], id, id, 1) > 0 then
      return true
    end
  end
  return false
end
-- Delete those of ``ids`` that no group of ``groups`` owes; returns how many were deleted.
local function delete_unowed(key, groups, ids)
  local deleted = 0
  for _, id in ipairs(ids) do
    if not owed(key, groups, id) then deleted = deleted + redis.call('XDEL', key, id) end
  end
  return deleted
end
"""

_ACK = (
    _GROUPS
    + """
local key, group = KEYS[1], ARGV[1]
if redis.call('EXISTS', key) == 0 then
  return {0, 0}
end
local groups = read_groups(key)
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
redis.call('XACK', key, group, unpack(ids))
return {delete_unowed(key, groups, ids), redis.call('XLEN', key)}
"""
)

_LEAVE = (
    _GROUPS
    + """
local key, group = KEYS[1], ARGV[1]
if redis.call('EXISTS', key) == 0 then
  return {0, 0}
end
local mine
for _, g in ipairs(read_groups(key)) do
  if g[1] == group then mine = g end
end
local length = redis.call('XLEN', key)
if not mine then
  return {0, length}
end
-- What the group owes: its pending entries and everything after its last delivered one (ids are 0-<n>).
local ids = {}
if length > 0 then
  for _, p in ipairs(redis.call('XPENDING', key, group, '-', '+', length)) do ids[#ids + 1] = p[1] end
  local _, newest = parse(redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)[1][1])
  for n = mine[3] + 1, newest do ids[#ids + 1] = '0-' .. n end
end
redis.call('XGROUP', 'DESTROY', key, group)
local groups = read_groups(key)
return {delete_unowed(key, groups, ids), redis.call('XLEN', key)}
"""
)


def _message_id(stream_id: bytes) -> int:
    """The message id of a stream entry id ``0-<n>``."""
    ms, _, seq = stream_id.partition(b"-")
    if ms != b"0" or not seq.isdigit():
        raise ValueError(f"stream entry {stream_id!r} was not written by RedisBus (ids are 0-<n>)")
    return int(seq)


def _raise_if_cancelled(task: asyncio.Task[Any] | None) -> None:
    """Raise CancelledError when ``task`` was asked to cancel. A cancellation that arrives during a call
    to Redis can be lost on the way (the call returns normally); a fetch that then went on to block,
    with ``timeout=None`` for ever, kept a consumer told to stop waiting for the next message (seen
    under load: a cancelled fetch hung, or took the whole ``MAX_BLOCK_S`` to end)."""
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _wake(waiters: set[asyncio.Future[None]]) -> None:
    for fut in waiters:
        if not fut.done():
            fut.set_result(None)
    waiters.clear()


class _Topic:
    """The stream of one topic, its label children and the producers of this process waiting for space."""

    def __init__(self, name: str, bus: RedisBus) -> None:
        self.name = name
        self.key = f"{bus.prefix}:{name}"
        self.overflow = bus.settings.topic_overflow.get(name, bus.settings.overflow)
        self.backlog = 0
        self.space_waiters: set[asyncio.Future[None]] = set()
        self.published = bus._published.labels(topic=name)
        self.shed = bus._shed.labels(topic=name)
        self.unrouted = bus._unrouted.labels(topic=name)
        self.backlog_gauge = bus._backlog.labels(topic=name)

    def set_backlog(self, length: int) -> None:
        self.backlog = length
        self.backlog_gauge.set(length)


class RedisSubscription:
    """One consumer of one group on one topic; the group's state lives in Redis."""

    def __init__(self, bus: RedisBus, topic: _Topic, group: str, consumer: str) -> None:
        self.topic = topic.name
        self.group = group
        self.consumer = consumer
        self._bus = bus
        self._topic = topic
        self._redelivered = bus._redelivered.labels(topic=topic.name, group=group)
        self._undecodable = bus._undecodable.labels(topic=topic.name, group=group)

    async def fetch(self, max_messages: int = 100, timeout: float | None = 1.0) -> list[Message]:
        """Return up to ``max_messages`` expired pending or new messages, waiting up to ``timeout``
        real seconds (``None`` waits until a message arrives or the bus closes) for the first one.

        An empty list means the timeout passed or the bus was closed.
        """
        return await self._bus._fetch(self, max_messages, timeout)

    async def ack(self, *message_ids: int) -> None:
        """Mark messages as processed by this group; ids that are not pending in it are ignored."""
        await self._bus._ack(self, message_ids)

    def __repr__(self) -> str:
        return f"RedisSubscription(topic={self.topic!r}, group={self.group!r}, consumer={self.consumer!r})"


class RedisBus:
    """The :class:`~opsmind.bus.protocols.Bus` contract on Redis Streams at ``url``, keys under ``prefix``.

    The constructor checks that the server answers and is recent enough, and raises
    :class:`ConnectionError` (naming the URL, without its password) when it cannot be reached. Async
    methods must be called from one event loop.
    """

    def __init__(
        self,
        settings: BusSettings,
        telemetry: Telemetry,
        clock: Clock | None = None,
        url: str = "redis://127.0.0.1:6379/0",
        prefix: str = "opsmind",
    ) -> None:
        self.settings = settings
        self.telemetry = telemetry
        self.clock: Clock = clock if clock is not None else RealClock()
        self.url = url
        self.prefix = prefix
        self._where = redacted(url)
        # RESP2 throughout: the scripts' replies and the raw blocking reads then have one shape.
        common: dict[str, Any] = {
            "protocol": 2,
            "socket_connect_timeout": CONNECT_TIMEOUT_S,
            "socket_timeout": COMMAND_TIMEOUT_S,
        }
        # Few, quick retries: enough for a dropped connection, while a server that is down fails fast.
        self._sync = redis.Redis.from_url(
            url, retry=Retry(ExponentialBackoff(cap=0.2, base=0.01), 2), **common
        )
        try:
            self._check_server()
        except BaseException:
            self._sync.close()
            raise
        self._redis = aioredis.Redis.from_url(
            url, retry=AsyncRetry(ExponentialBackoff(cap=0.2, base=0.01), 2), **common
        )
        self._publish_script = self._redis.register_script(_PUBLISH)
        self._fetch_script = self._redis.register_script(_FETCH)
        self._ack_script = self._redis.register_script(_ACK)
        self._leave_script = self._redis.register_script(_LEAVE)
        # Groups this bus left and has not joined again: their subscriptions fetch nothing (a fetch would
        # otherwise create the group again, as after a Redis restart).
        self._left: set[tuple[str, str]] = set()
        self._topics: dict[str, _Topic] = {}
        self._closed = False
        self._closing = asyncio.Event()
        m = BusMetrics.of(telemetry)  # the same metrics on every backend
        self._published, self._shed, self._unrouted = m.published, m.shed, m.unrouted
        self._redelivered, self._backlog = m.redelivered, m.backlog
        self._undecodable = telemetry.counter(
            "opsmind_bus_undecodable_messages_total",
            "Stream entries that did not decode as a payload; acked and dropped.",
            ("topic", "group"),
        )

    def _check_server(self) -> None:
        try:
            self._sync.ping()
        except redis.RedisError as exc:
            raise ConnectionError(f"bus: cannot reach Redis at {self._where}: {exc}") from exc
        try:
            info = self._sync.info("server")
        except redis.ResponseError:
            return  # INFO denied to this user (ACL): the first XADD 0-* will tell if the server is too old
        version = str(info.get("redis_version", "0"))
        parts = tuple(int(p) if p.isdigit() else 0 for p in version.split(".")[:2])
        if parts < MIN_REDIS:
            raise RuntimeError(
                f"bus: Redis at {self._where} runs {version}; the Redis Streams bus needs "
                f"{'.'.join(map(str, MIN_REDIS))} or later"
            )

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def _topic(self, name: str) -> _Topic:
        topic = self._topics.get(name)
        if topic is None:
            topic = self._topics[name] = _Topic(name, self)
        return topic

    @contextmanager
    def _redis_errors(self, topic: str) -> Iterator[None]:
        """Turn a lost connection into :class:`ConnectionError` naming the server, or into the
        ``RuntimeError`` of a closed bus when :meth:`close` is what cut it."""
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._check_open(topic)
            raise ConnectionError(f"bus: Redis at {self._where} failed on topic {topic!r}: {exc}") from exc

    def _check_open(self, topic: str) -> None:
        if self._closed:
            raise RuntimeError(f"the bus is closed; cannot use topic {topic!r}")

    # -- producing -------------------------------------------------------------------------------------

    async def publish(self, topic: str, payload: Any) -> int | None:
        """Append ``payload`` to ``topic`` and return its id, or ``None`` when it was shed.

        Raises :class:`TypeError` for a payload the codec cannot encode, :class:`RuntimeError` when the
        bus is closed (also for a producer that was waiting for space when it closed).
        """
        self._check_open(topic)
        data = encode(payload)
        t = self._topic(topic)
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            with self._redis_errors(topic):
                status, stream_id, length = await self._publish_script(
                    keys=[t.key], args=[data, self.settings.max_backlog]
                )
            t.set_backlog(length)
            if status != _FULL:
                t.published.inc()
                if status == _UNROUTED:
                    t.unrouted.inc()
                return _message_id(stream_id)
            if t.overflow == "shed":
                break
            if deadline is None:
                deadline = loop.time() + self.settings.block_timeout_s
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await self._wait_for_space(t, min(remaining, SPACE_POLL_S))
            self._check_open(topic)
        t.shed.inc()
        return None

    async def _wait_for_space(self, t: _Topic, seconds: float) -> None:
        """Wait until an ack of this bus frees space in ``t``, the bus closes, or ``seconds`` pass."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        t.space_waiters.add(fut)
        try:
            await asyncio.wait({fut}, timeout=seconds)
        finally:
            t.space_waiters.discard(fut)

    # -- consuming -------------------------------------------------------------------------------------

    def subscribe(self, topic: str, group: str, consumer: str = "c0") -> RedisSubscription:
        """Join ``group`` on ``topic`` as ``consumer``, creating the group at the stream's current end.

        Blocks for one round trip to Redis (see the module docstring). Subscribing again with the same
        names, from this process or another, joins the same group.
        """
        self._check_open(topic)
        t = self._topic(topic)
        self._left.discard((topic, group))
        try:
            self._create_group(t.key, group)
            t.set_backlog(int(self._sync.xlen(t.key)))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise ConnectionError(f"bus: Redis at {self._where} failed on topic {topic!r}: {exc}") from exc
        return RedisSubscription(self, t, group, consumer)

    def _create_group(self, key: str, group: str) -> None:
        try:
            self._sync.xgroup_create(key, group, id="$", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):  # the group exists already: join it as it is
                raise

    async def _recreate_group(self, sub: RedisSubscription) -> None:
        log.warning(
            "bus: consumer group %r of topic %r is gone from Redis (restarted without persistence, or "
            "deleted); creating it again at the end of the stream",
            sub.group,
            sub.topic,
        )
        try:
            await self._redis.xgroup_create(sub._topic.key, sub.group, id="$", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _fetch(self, sub: RedisSubscription, max_messages: int, timeout: float | None) -> list[Message]:
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, got {max_messages}")
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + max(0.0, timeout)
        task = asyncio.current_task()
        try:
            while not self._closed and (sub.topic, sub.group) not in self._left:
                _raise_if_cancelled(task)
                messages, due = await self._collect(sub, max_messages)
                if messages:
                    return messages
                _raise_if_cancelled(task)
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    break
                wait = min(s for s in (remaining, due, MAX_BLOCK_S) if s is not None)
                messages = await self._read_new(sub, max_messages, wait)
                if messages and (sub.topic, sub.group) not in self._left:
                    return messages
        except (RuntimeError, ConnectionError, redis.RedisError):
            if self._closed:  # close() cut the connection under us
                return []
            raise
        return []

    async def _collect(self, sub: RedisSubscription, limit: int) -> tuple[list[Message], float | None]:
        """Claim expired pending messages, then take new ones, for ``sub``; never waits. Also returns
        the seconds until the group's next pending message times out when there was nothing."""
        t = sub._topic
        idle_ms = max(1, math.ceil(self.settings.ack_timeout_s * 1000))
        args: list[str | int] = [sub.group, sub.consumer, limit, idle_ms]
        with self._redis_errors(t.name):
            try:
                reply = await self._fetch_script(keys=[t.key], args=args)
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await self._recreate_group(sub)
                reply = await self._fetch_script(keys=[t.key], args=args)
        claimed, deliveries, new, wait_ms, length = reply
        t.set_backlog(length)
        if claimed:
            sub._redelivered.inc(len(claimed))
        messages = await self._messages(sub, zip(claimed, deliveries, strict=True))
        messages += await self._messages(sub, ((entry, 1) for entry in new))
        return messages, (None if wait_ms < 0 else max(wait_ms, 1) / 1000)

    async def _read_new(self, sub: RedisSubscription, limit: int, wait: float) -> list[Message]:
        """Wait up to ``wait`` seconds for new messages with a blocking ``XREADGROUP``."""
        pool = self._redis.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]  # untyped in redis-py
        reading: asyncio.Future[Any] | None = None
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            # The connection's client id is asked in the same round trip, to unblock it on time later.
            block_ms = max(1, math.ceil(wait * 1000))
            read = ("XREADGROUP", "GROUP", sub.group, sub.consumer, "COUNT", limit, "BLOCK", block_ms)
            await conn.send_packed_command(
                conn.pack_commands([("CLIENT", "ID"), (*read, "STREAMS", sub._topic.key, ">")])
            )
            try:
                client_id: int | None = await conn.read_response()
            except redis.ResponseError:  # CLIENT denied to this user by an ACL: see below
                client_id = None
            _raise_if_cancelled(asyncio.current_task())  # before blocking: see _raise_if_cancelled
            reading = asyncio.ensure_future(conn.read_response(timeout=math.inf))
            await asyncio.wait({reading, closing}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            if self._closed:
                reading.cancel()
                await conn.disconnect(nowait=True)
                return []
            if not reading.done():
                # Without CLIENT, Redis's own BLOCK timeout ends the read, up to one cron tick late.
                if client_id is not None:
                    with suppress(redis.ResponseError):
                        await self._redis.client_unblock(client_id)
            reply = await asyncio.wait_for(reading, COMMAND_TIMEOUT_S)
        except redis.ResponseError as exc:
            await conn.disconnect(nowait=True)
            # The group or the whole stream was deleted while we waited: the next collect recreates it.
            if "NOGROUP" in str(exc) or "UNBLOCKED" in str(exc):
                return []
            raise
        except BaseException:
            # Mid-command: the connection is in an unknown state, never reuse it.
            if reading is not None:
                reading.cancel()
            await conn.disconnect(nowait=True)
            raise
        finally:
            closing.cancel()
            await pool.release(conn)
        if not reply:
            return []
        return await self._messages(sub, ((entry, 1) for entry in reply[0][1]))

    async def _messages(self, sub: RedisSubscription, entries: Iterable[tuple[Any, int]]) -> list[Message]:
        """Messages from raw stream entries ``[id, [field, value, ...]]`` and their delivery counts;
        entries that do not decode are acked and dropped."""
        out: list[Message] = []
        bad: list[int] = []
        for (stream_id, fields), deliveries in entries:
            mid = _message_id(stream_id)
            values = dict(zip(fields[::2], fields[1::2], strict=True))
            try:
                payload = decode(values[PAYLOAD])
            except (CodecError, KeyError) as exc:
                log.error(
                    "bus: dropping message %d of topic %r (group %r): its payload does not decode: %s",
                    mid,
                    sub.topic,
                    sub.group,
                    exc,
                )
                bad.append(mid)
                continue
            out.append(Message(mid, sub.topic, payload, int(deliveries)))
        if bad:
            sub._undecodable.inc(len(bad))
            await self._ack(sub, bad)
        return out

    async def _ack(self, sub: RedisSubscription, message_ids: Iterable[int]) -> None:
        t = sub._topic
        # Like XACK, ids that cannot be pending are ignored rather than refused.
        ids = [f"0-{mid}" for mid in message_ids if isinstance(mid, int) and mid > 0]
        for start in range(0, len(ids), ACK_CHUNK):
            with self._redis_errors(t.name):
                deleted, length = await self._ack_script(
                    keys=[t.key], args=[sub.group, *ids[start : start + ACK_CHUNK]]
                )
            t.set_backlog(length)
            if deleted:
                _wake(t.space_waiters)

    async def leave(self, topic: str, group: str) -> None:
        """Delete ``group`` from ``topic`` (``XGROUP DESTROY``) and, in the same script, the entries only
        it still owed; see the protocol."""
        self._check_open(topic)
        t = self._topic(topic)
        self._left.add((topic, group))
        with self._redis_errors(topic):
            deleted, length = await self._leave_script(keys=[t.key], args=[group])
        t.set_backlog(length)
        if deleted:
            _wake(t.space_waiters)

    # -- inspection and shutdown -----------------------------------------------------------------------

    def backlog(self, topic: str) -> int:
        """Messages of ``topic`` some group has not acked yet, as of this bus's latest operation on it."""
        t = self._topics.get(topic)
        return 0 if t is None else t.backlog

    async def pending(self, topic: str, group: str) -> dict[int, tuple[str, int]]:
        """The pending entries of ``group`` as ``{id: (consumer, deliveries)}``, for tests and tools.

        Unlike :meth:`MemoryBus.pending <opsmind.bus.memory.MemoryBus.pending>` this asks Redis, so it
        is a coroutine.
        """
        key = self._topic(topic).key
        with self._redis_errors(topic):
            try:
                rows = await self._redis.xpending_range(key, group, "-", "+", 2**31 - 1)
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc) or "no such key" in str(exc).lower():
                    return {}
                raise
        out: dict[int, tuple[str, int]] = {}
        for row in rows:
            mid, consumer = row["message_id"], row["consumer"]
            assert isinstance(mid, bytes) and isinstance(consumer, bytes)  # raw replies, not decoded
            out[_message_id(mid)] = (consumer.decode(), int(row["times_delivered"]))
        return out

    async def close(self) -> None:
        """Stop the bus: waiting fetches return ``[]``, waiting and later publishes raise ``RuntimeError``,
        and the connections are closed. Closing twice is harmless. Unlike the memory bus, what the
        streams hold stays in Redis for the next bus on the same prefix."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        for t in self._topics.values():
            _wake(t.space_waiters)
        try:
            await self._redis.aclose()
        finally:
            self._sync.close()
