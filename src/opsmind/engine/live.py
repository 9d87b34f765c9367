"""The live hub: what the engine does, pushed to the dashboard as it happens (docs/DASHBOARD.md, "Live
updates").

The hub follows the engine from the side and never holds it up:

- the bus topics ``anomalies``, ``incidents`` and, while some client follows a series, ``samples``, each
  under the hub's own consumer group (``live``), acked as soon as the message is turned into an event,
  whatever the clients do;
- the records the stages and the API write to the store (:class:`ObservedStore` tells the hub after each
  durable write): audit entries (topic ``audit``; switches of the healing automation, globally or per
  service, also on ``automation``), remediations (``remediations``, once per state change of the heal
  executor) and the scaling stage's decisions (``decisions``);
- a timer (``live.health_interval_s`` of the engine clock) that computes every service's health score
  with the REST route's reading, for all services in one pass
  (:func:`~opsmind.engine.health_reading.compute_all`), and pushes it on ``health`` when it moved by at
  least one point or its status changed.

Each event gets the next global sequence number and goes into a ring buffer of the last
``live.buffer_size`` events (for resuming), then to every connected client whose subscription matches
(topics, services, series), as one JSON text encoded once for all of them. A client's queue holds at
most ``live.client_queue`` messages: a client that falls that far behind is dropped (close code 1013,
"try again later") and resumes with ``since``; nobody waits for it. ``samples`` events are made only
for series some client follows, so they cost a set lookup per series of a batch; and the hub is in the
``samples`` group only while some client follows a series: it joins when the first one does (before
that client hears ``subscribed``, so the samples after it are not missed) and leaves the group
(:meth:`~opsmind.bus.protocols.Bus.leave`) when the last one stops, so that ingest pays nothing for the
hub the rest of the time; on Redis every batch a group reads is fetched and decoded, which made the
idle hub about a third of the shared-backend ingest cost. A group left behind by a process that died
is left at start.

Sequence numbers start at the hub's start time in milliseconds (wall clock), not at 1: a number a client
kept from before a restart is then older than the new buffer, and gets a ``reset`` instead of a replay
of unrelated events. The WebSocket itself is the API's (``api/routers/live.py``); this module speaks the
protocol as text in, text out (:class:`LiveClient`), so it can be tested without a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opsmind.bus.consumer import consume
from opsmind.bus.protocols import Bus, Message, Subscription
from opsmind.clock import Clock
from opsmind.config import LiveSettings
from opsmind.detect.health import HealthScore
from opsmind.detect.stage import ANOMALIES_TOPIC, SAMPLES_TOPIC
from opsmind.engine.health_reading import compute_all
from opsmind.heal.state import Remediation
from opsmind.incidents.stage import INCIDENTS_TOPIC, IncidentEvent
from opsmind.store.composed import ComposedStore
from opsmind.store.protocols import Store
from opsmind.telemetry import Telemetry
from opsmind.types import Anomaly, AuditEntry, Decision, InvalidSeriesError, Record, Series, SeriesSamples

__all__ = [
    "GROUP",
    "TOPICS",
    "Close",
    "LiveClient",
    "LiveEvent",
    "LiveHub",
    "ObservedStore",
    "RecordListener",
]

log = logging.getLogger(__name__)

GROUP = "live"
"""The hub's consumer group on every bus topic it follows."""
TOPICS = ("incidents", "anomalies", "remediations", "decisions", "health", "audit", "automation", "samples")
HEALTH_WINDOW_S = 900.0
"""History the health score reads, as the REST route's default ``window``."""
HEALTH_RECENT_S = 120.0
"""What counts as the current value, as the REST route's default ``recent``."""
MAX_MESSAGE_CHARS = 65_536
"""A client message longer than this is refused (it could only be a mistake or an attack)."""
MAX_FILTER_ITEMS = 1_000
"""Most services, and most series, one subscription may name."""
AUTOMATION_VERBS = frozenset({"automation_mode", "service_pause", "service_resume"})
"""Audit verbs of a person switching the healing automation (the heal stage's), shown on ``automation``."""
SCALE_DECISION = "scale"
"""The name of the scaling stage's ``Decision`` records."""
CLOSE_TOO_SLOW = 1013
CLOSE_GOING_AWAY = 1001
_SEEN_REMEDIATIONS = 10_000


# -- the store tap -----------------------------------------------------------------------------------

RecordListener = Callable[[Sequence[Record]], None]
"""Called with the records of each durable write, in the writing thread (often a worker thread)."""


class ObservedStore(ComposedStore):
    """The engine's store (any backend: :func:`~opsmind.store.backends.open_store`), telling its listeners
    about every record once it is durable. Every other call goes straight to the backend.

    Listeners run in the thread that wrote (the stages write from worker threads) and must be quick
    and must not raise; one that raises is logged and the write still counts. Only this process's writes
    are heard: another engine instance on the same PostgreSQL database has its own hub."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner, inner)
        self.inner = inner
        self.listeners: list[RecordListener] = []

    def close(self) -> None:
        self.inner.close()

    def put(self, record: Record) -> None:
        super().put(record)
        self._tell((record,))

    def put_many(self, records: Sequence[Record]) -> None:
        super().put_many(records)
        self._tell(records)

    def _tell(self, records: Sequence[Record]) -> None:
        for listener in self.listeners:
            try:
                listener(records)
            except Exception:
                log.exception("a record listener failed (the records were stored)")


# -- events and clients ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One event as buffered: what the filters look at and the JSON text sent to every client."""

    seq: int
    topic: str
    services: frozenset[str]
    series: str | None
    text: str


@dataclass(frozen=True, slots=True)
class Close:
    """Tells the transport to close the connection with this code and reason."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class _Filter:
    topics: frozenset[str]
    services: frozenset[str]
    series: frozenset[str]

    def matches(self, ev: LiveEvent) -> bool:
        if ev.topic not in self.topics:
            return False
        if ev.series is not None and ev.series not in self.series:
            return False
        # An event that names no service (a global switch, an audit entry about nothing in particular)
        # passes every service filter: it concerns them all.
        return not (self.services and ev.services and self.services.isdisjoint(ev.services))


class _BadMessage(ValueError):
    """A client message that does not follow the protocol; its text is sent back as the reason."""


def _dumps(message: Mapping[str, Any]) -> str:
    """Compact JSON; NaN and infinities (not JSON) become null."""
    try:
        return json.dumps(message, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return json.dumps(_finite(message), separators=(",", ":"), allow_nan=False)


def _finite(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, Mapping):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


def _record_json(record: Record) -> dict[str, Any]:
    """A record as the REST API shows it (pydantic writes NaN as null)."""
    data: dict[str, Any] = json.loads(record.model_dump_json())
    return data


class LiveClient:
    """One connection's end of the hub: the transport hands it each text the client sent
    (:meth:`receive`) and sends whatever :meth:`next` returns, until it returns a :class:`Close`.

    Messages waiting to be sent are counted against ``live.client_queue``, except a replay asked for with
    ``since`` (it is bounded by the buffer instead); a client over the limit is dropped."""

    def __init__(self, hub: LiveHub, principal: Mapping[str, str], limit: int) -> None:
        self.hub = hub
        self.principal = dict(principal)
        self.limit = limit
        self.filter: _Filter | None = None
        self.last_seq: int | None = None  # of the last event handed to the transport
        self.closed: Close | None = None
        # (message, counts against the limit, event seq or None)
        self._out: deque[tuple[str | Close, bool, int | None]] = deque()
        self._counted = 0
        self._ready = asyncio.Event()

    # -- transport side --

    async def next(self) -> str | Close:
        """The next message to send: a JSON text, or a :class:`Close` after which nothing follows."""
        while not self._out:
            self._ready.clear()
            await self._ready.wait()
        item, counted, seq = self._out.popleft()
        if counted:
            self._counted -= 1
        if seq is not None:
            self.last_seq = seq
        return item

    def pending(self) -> int:
        """Messages waiting to be sent."""
        return len(self._out)

    def receive(self, text: str | bytes) -> None:
        """Handle one message from the client; a malformed one is answered with an ``error``."""
        if self.closed is not None:
            return
        try:
            msg = self._parse(text)
            kind = msg.get("type")
            if kind == "ping":
                if set(msg) - {"type"}:
                    raise _BadMessage(f"ping takes no fields, got {sorted(set(msg) - {'type'})}")
                self.send({"type": "pong", "seq": self.hub.seq})
            elif kind == "subscribe":
                flt, since = self._subscription(msg)
                self.hub._subscribe(self, flt, since)
            elif kind is None:
                raise _BadMessage('a message needs a "type": "subscribe" or "ping"')
            else:
                raise _BadMessage(f'unknown message type {kind!r}; expected "subscribe" or "ping"')
        except _BadMessage as exc:
            self.send({"type": "error", "reason": str(exc)})

    def disconnect(self) -> None:
        """The connection is gone: forget the client (idempotent)."""
        self.hub._detach(self)

    # -- hub side --

    def send(self, message: Mapping[str, Any], counted: bool = True) -> None:
        """Queue a control message (hello, pong, error, subscribed, reset)."""
        self._push(_dumps(message), counted, None)

    def _push(self, item: str | Close, counted: bool, seq: int | None) -> None:
        if self.closed is not None:
            return
        if counted and self._counted >= self.limit:
            self._drop()
            return
        self._out.append((item, counted, seq))
        if counted:
            self._counted += 1
        self._ready.set()

    def _drop(self) -> None:
        last = self.last_seq if self.last_seq is not None else self.hub.seq
        self.hub._dropped.inc()
        log.info("live: client %s fell %d messages behind; dropped", self.principal.get("name"), self.limit)
        self.close(Close(CLOSE_TOO_SLOW, f"too slow, events dropped: resubscribe with since={last}"))

    def close(self, how: Close) -> None:
        """Discard what is queued, send ``how`` next and detach from the hub."""
        if self.closed is not None:
            return
        self._out.clear()
        self._counted = 0
        self._out.append((how, False, None))
        self.closed = how
        self._ready.set()
        self.hub._detach(self)

    def _requeue_for(self, replay: Iterable[LiveEvent], head: Sequence[Mapping[str, Any]]) -> None:
        """A new subscription: drop the events queued under the old one, then queue ``head`` (subscribed,
        reset) and the replay, uncounted, before anything live."""
        kept = [(m, c, s) for m, c, s in self._out if s is None]
        self._out = deque(kept)
        self._counted = sum(1 for _, c, _ in kept if c)
        for message in head:
            self._out.append((_dumps(message), False, None))
        for ev in replay:
            self._out.append((ev.text, False, ev.seq))
        self._ready.set()

    def _parse(self, text: str | bytes) -> dict[str, Any]:
        if isinstance(text, bytes):
            raise _BadMessage("binary frames are not accepted: send JSON text")
        if len(text) > MAX_MESSAGE_CHARS:
            raise _BadMessage(f"message longer than {MAX_MESSAGE_CHARS} characters")
        try:
            msg = json.loads(text)
        except ValueError as exc:
            raise _BadMessage(f"not JSON: {exc}") from None
        if not isinstance(msg, dict):
            raise _BadMessage(f"a message must be a JSON object, got {type(msg).__name__}")
        return msg

    @staticmethod
    def _strings(msg: Mapping[str, Any], field: str) -> list[str]:
        value = msg.get(field)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise _BadMessage(f"{field} must be a list of non-empty strings")
        if len(value) > MAX_FILTER_ITEMS:
            raise _BadMessage(f"{field}: at most {MAX_FILTER_ITEMS} entries")
        return value

    def _subscription(self, msg: Mapping[str, Any]) -> tuple[_Filter, int | None]:
        unknown = set(msg) - {"type", "topics", "services", "series", "since"}
        if unknown:
            raise _BadMessage(f"unknown field(s) {sorted(unknown)} in subscribe")
        topics = self._strings(msg, "topics")
        bad = [t for t in topics if t not in TOPICS]
        if bad:
            raise _BadMessage(f"unknown topic(s) {bad}; topics are {list(TOPICS)}")
        keys: list[str] = []
        for key in self._strings(msg, "series"):
            try:
                keys.append(Series.parse(key).key)
            except InvalidSeriesError as exc:
                raise _BadMessage(f"series {key!r}: {exc}") from None
        since = msg.get("since")
        if since is not None and (isinstance(since, bool) or not isinstance(since, int) or since < 0):
            raise _BadMessage("since must be a sequence number (a non-negative integer) or null")
        return _Filter(
            frozenset(topics or TOPICS), frozenset(self._strings(msg, "services")), frozenset(keys)
        ), since


# -- the hub ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Health:
    score: float | None
    status: str


class LiveHub:
    """Follows the engine and fans its events out to the connected clients (see the module docstring)."""

    def __init__(
        self,
        bus: Bus,
        store: ObservedStore,
        clock: Clock,
        telemetry: Telemetry,
        settings: LiveSettings,
    ) -> None:
        self.bus = bus
        self.store = store
        self.clock = clock
        self.settings = settings
        self.seq = 0
        self.buffer: deque[LiveEvent] = deque(maxlen=settings.buffer_size)
        self.clients: set[LiveClient] = set()
        self._series_refs: Counter[str] = Counter()
        # The samples group, joined while some client follows a series (see the module docstring).
        self._samples_sub: Subscription | None = None
        self._samples_wanted = asyncio.Event()
        self._samples_idle = asyncio.Event()
        self._samples_leaving = False
        self._health: dict[str, _Health] = {}
        self._remediations: OrderedDict[str, int] = OrderedDict()  # id -> transitions seen
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.running = False
        t = telemetry
        self._events = t.counter("opsmind_live_events_total", "Events the live hub emitted", ("topic",))
        self._clients = t.gauge("opsmind_live_clients", "Clients connected to the live WebSocket")
        self._dropped = t.counter(
            "opsmind_live_dropped_clients_total", "Live clients dropped for falling behind"
        )
        store.listeners.append(self._records_written)

    # -- lifecycle --

    async def start(self) -> None:
        """Join the consumer groups (before the producers start) and start following."""
        self._stop.clear()
        self._loop = asyncio.get_running_loop()
        # See the module docstring; never backwards, and a restarted hub replays nothing from before.
        self.seq = max(self.seq, time.time_ns() // 1_000_000 - 1)
        self.buffer.clear()
        handlers: dict[str, Callable[[Message], Awaitable[None]]] = {
            ANOMALIES_TOPIC: self._on_anomaly,
            INCIDENTS_TOPIC: self._on_incident,
        }
        for topic, handler in handlers.items():
            sub = self.bus.subscribe(topic, group=GROUP, consumer=f"{GROUP}-0")
            loop = self._consumer(sub, handler)
            self._tasks.append(asyncio.create_task(self._supervise(loop), name=f"live-{topic}"))
        # A samples group kept by a hub that died (Redis keeps it) would fill the topic: nobody reads it.
        await self.bus.leave(SAMPLES_TOPIC, GROUP)
        self._samples_sub = None
        self._following_changed()
        self._tasks.append(asyncio.create_task(self._supervise(self._follow_samples), name="live-samples"))
        if self.settings.health_interval_s > 0:
            self._tasks.append(asyncio.create_task(self._supervise(self._health_loop), name="live-health"))
        self.running = True

    async def stop(self) -> None:
        """Stop following and close every client with 1001 (going away)."""
        self._stop.set()
        self.running = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._samples_sub is not None:
            self._samples_sub = None
            try:
                await self.bus.leave(SAMPLES_TOPIC, GROUP)
            except (RuntimeError, ConnectionError) as exc:  # the bus closed or went away first
                log.warning("live: could not leave the samples group at stop: %s", exc)
        for client in list(self.clients):
            client.close(Close(CLOSE_GOING_AWAY, "server shutting down"))
        self._loop = None

    def _following_changed(self) -> None:
        """After the followed series changed: join the samples group now if a first series is followed
        (unless the follower is leaving it: it joins again right after), or tell the follower to leave."""
        if self._series_refs:
            if self._samples_sub is None and not self._samples_leaving and self.running:
                self._samples_sub = self.bus.subscribe(SAMPLES_TOPIC, group=GROUP, consumer=f"{GROUP}-0")
            self._samples_idle.clear()
            self._samples_wanted.set()
        else:
            self._samples_wanted.clear()
            self._samples_idle.set()

    async def _follow_samples(self) -> None:
        """Read ``samples`` while some client follows a series; leave the group when none does."""
        while True:
            await self._samples_wanted.wait()
            if self._samples_sub is None:
                self._samples_sub = self.bus.subscribe(SAMPLES_TOPIC, group=GROUP, consumer=f"{GROUP}-0")
            await consume(
                self._samples_sub, self._guarded(self._on_samples), stop=self._samples_idle, batch=500
            )
            if self.bus.closed:
                return
            if self._series_refs:
                continue  # followed again before the group was left (or in the instant consume stopped)
            self._samples_sub = None
            self._samples_leaving = True
            try:
                await self.bus.leave(SAMPLES_TOPIC, GROUP)
            finally:
                self._samples_leaving = False

    def _consumer(
        self, sub: Any, handler: Callable[[Message], Awaitable[None]]
    ) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            await consume(sub, self._guarded(handler), stop=self._stop, batch=500)

        return run

    @staticmethod
    def _guarded(handler: Callable[[Message], Awaitable[None]]) -> Callable[[Message], Awaitable[None]]:
        async def handle(msg: Message) -> None:
            try:
                await handler(msg)
            except Exception:
                # Never redelivered: a live view skips what it cannot show rather than hold the topic.
                log.exception("live: cannot turn message %d of %s into an event", msg.id, msg.topic)
            # Handlers never wait, so a fetched batch would be fanned out in one go; letting the clients'
            # writers run between messages keeps a burst from overflowing clients that keep up.
            await asyncio.sleep(0)

        return handle

    async def _supervise(self, loop: Callable[[], Awaitable[None]]) -> None:
        while not self._stop.is_set():
            try:
                await loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live: a loop crashed; restarting in 1 s")
                await asyncio.sleep(1.0)

    # -- clients --

    def connect(self, principal: Mapping[str, str]) -> LiveClient:
        """A new client; its first message, ``hello``, is already queued."""
        client = LiveClient(self, principal, self.settings.client_queue)
        client.send({"type": "hello", "seq": self.seq, "principal": dict(principal)}, counted=False)
        if not self.running:
            client.close(Close(CLOSE_GOING_AWAY, "the engine is not running"))
            return client
        self.clients.add(client)
        self._clients.set(len(self.clients))
        return client

    def _detach(self, client: LiveClient) -> None:
        if client in self.clients:
            self.clients.discard(client)
            self._clients.set(len(self.clients))
        if client.filter is not None:
            self._series_refs.subtract(client.filter.series)
            self._series_refs += Counter()  # drops the keys nobody follows any more
            client.filter = None
            self._following_changed()

    def _subscribe(self, client: LiveClient, flt: _Filter, since: int | None) -> None:
        if client not in self.clients:
            return
        if client.filter is not None:
            self._series_refs.subtract(client.filter.series)
        self._series_refs.update(flt.series)
        self._series_refs += Counter()
        client.filter = flt
        self._following_changed()
        head: list[dict[str, Any]] = [{"type": "subscribed", "seq": self.seq}]
        replay: list[LiveEvent] = []
        if since is not None:
            first = self.buffer[0].seq if self.buffer else self.seq + 1
            if since < first - 1 or since > self.seq:
                head.append({"type": "reset", "seq": self.seq})
            else:
                replay = [ev for ev in list(self.buffer)[since - first + 1 :] if flt.matches(ev)]
        client._requeue_for(replay, head)

    # -- events --

    def emit(
        self,
        topic: str,
        ts: float,
        data: Mapping[str, Any],
        service: str | None = None,
        services: Iterable[str] = (),
        series: str | None = None,
    ) -> LiveEvent:
        """Number, buffer and fan out one event. ``services`` are the services it concerns beyond
        ``service`` (an incident's); ``series`` marks a ``samples`` event. Call on the event loop."""
        self.seq += 1
        names = frozenset((*services, *((service,) if service else ())))
        message = {
            "type": "event",
            "seq": self.seq,
            "topic": topic,
            "ts": ts,
            "service": service,
            "data": data,
        }
        ev = LiveEvent(self.seq, topic, names, series, _dumps(message))
        self.buffer.append(ev)
        self._events.labels(topic).inc()
        for client in list(self.clients):
            if client.filter is not None and client.filter.matches(ev):
                client._push(ev.text, True, ev.seq)
        return ev

    async def _on_samples(self, msg: Message) -> None:
        if not self._series_refs:
            return  # nobody follows a series: the whole batch costs nothing
        batch: list[SeriesSamples] = msg.payload
        now = self.clock.now()
        for ss in batch:
            key = ss.series.key
            if key not in self._series_refs or not len(ss):
                continue
            points = [
                [t, v if math.isfinite(v) else None] for t, v in zip(ss.timestamps, ss.values, strict=True)
            ]
            data = {"series": key, "service": ss.series.service, "metric": ss.series.name, "points": points}
            self.emit("samples", now, data, service=ss.series.service, series=key)

    async def _on_anomaly(self, msg: Message) -> None:
        a: Anomaly = msg.payload
        self.emit("anomalies", a.at, _record_json(a), service=a.service)

    async def _on_incident(self, msg: Message) -> None:
        ev: IncidentEvent = msg.payload
        inc = ev.incident
        data = {"event": ev.event, "incident": _record_json(inc)}
        self.emit("incidents", inc.at, data, service=inc.service, services=inc.services)

    # -- records written to the store --

    def _records_written(self, records: Sequence[Record]) -> None:
        """The store's listener, in the writing thread: pick what the hub shows, hand it to the loop."""
        loop = self._loop
        if loop is None:
            return
        wanted = [
            r
            for r in records
            if isinstance(r, AuditEntry | Remediation)
            or (isinstance(r, Decision) and r.name == SCALE_DECISION)
        ]
        if wanted:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody is listening
                loop.call_soon_threadsafe(self._records_in, wanted)

    def _records_in(self, records: Sequence[Record]) -> None:
        if not self.running:
            return
        for r in records:
            if isinstance(r, AuditEntry):
                data = _record_json(r)
                self.emit("audit", r.at, data, service=r.service)
                if r.verb in AUTOMATION_VERBS:
                    self.emit("automation", r.at, {**r.detail, **data}, service=r.service)
            elif isinstance(r, Remediation):
                self._remediation(r)
            elif isinstance(r, Decision):
                data = {"service": r.service, "at": r.at, "decision_id": r.id, "reasons": list(r.reasons)}
                value = _finite(r.value)
                if isinstance(value, dict):
                    data = {**value, **data}
                else:
                    data["value"] = value
                self.emit("decisions", r.at, data, service=r.service)

    def _remediation(self, rem: Remediation) -> None:
        # The executor rewrites the snapshot also without a state move (a key recorded before sending);
        # the length of its history says whether it moved.
        moves = len(rem.history)
        if self._remediations.get(rem.id) == moves:
            return
        self._remediations[rem.id] = moves
        self._remediations.move_to_end(rem.id)
        while len(self._remediations) > _SEEN_REMEDIATIONS:
            self._remediations.popitem(last=False)
        last = rem.history[-1] if rem.history else None
        data = {
            **_record_json(rem),
            "finished": rem.finished,
            "previous": None if last is None or last.source is None else last.source.value,
        }
        self.emit("remediations", rem.at, data, service=rem.service)

    # -- health --

    async def _health_loop(self) -> None:
        while not self._stop.is_set():
            await self.check_health()
            await self.clock.sleep(self.settings.health_interval_s)

    async def check_health(self) -> None:
        """Compute every service's health now and push the ones that changed enough."""
        now = self.clock.now()
        scores = await asyncio.to_thread(self._scores, now)
        for service, h in scores.items():
            before = self._health.get(service)
            if before is not None and not _moved(before, h):
                continue
            self._health[service] = _Health(h.score, h.status)
            data = {
                "service": service,
                "score": h.score,
                "status": h.status,
                "previous_score": None if before is None else before.score,
                "previous_status": None if before is None else before.status,
                "explanation": h.explanation,
            }
            self.emit("health", now, data, service=service)

    def _scores(self, now: float) -> dict[str, HealthScore]:
        return compute_all(self.store, self.store, now, HEALTH_WINDOW_S, HEALTH_RECENT_S)


def _moved(before: _Health, now: HealthScore) -> bool:
    if before.status != now.status:
        return True
    if before.score is None or now.score is None:
        return before.score is not now.score
    return abs(now.score - before.score) >= 1.0
