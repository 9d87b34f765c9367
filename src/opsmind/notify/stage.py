"""The notify stage: incident events in, notifications out, with retries and exponential backoff.

Opened and resolved incidents are notified (updates are not, to keep the noise down), unless a muter
mutes the incident's labels (:mod:`opsmind.incidents.muting`; today: the active silences in the event
store): then the audit log records which one and why, and the incident's resolution is not notified
either. Each notifier is
tried up to ``1 + max_retries`` times while it reports a retryable failure, waiting ``backoff * 2**n``
of engine time between attempts; the outcome of every delivery is written to the audit log.
"""

from __future__ import annotations

import asyncio
import logging

from opsmind.bus.dedup import RecentKeys
from opsmind.bus.protocols import Bus, Message
from opsmind.bus.stage import Stage
from opsmind.clock import Clock
from opsmind.incidents.muting import SilenceMuter, incident_labels
from opsmind.incidents.stage import INCIDENTS_TOPIC, IncidentEvent
from opsmind.notify.base import Notifier, NotifyResult
from opsmind.store.protocols import EventStore
from opsmind.telemetry import Telemetry
from opsmind.types import AuditEntry, Silence

log = logging.getLogger(__name__)
NOTIFIED_EVENTS = {"opened", "resolved"}


class RetryPolicy:
    def __init__(self, max_retries: int, backoff_s: float) -> None:
        self.max_retries = max_retries
        self.backoff_s = backoff_s

    def delays(self) -> list[float]:
        return [self.backoff_s * 2**n for n in range(self.max_retries)]


class NotifyStage(Stage):
    name = "notify"
    topic = INCIDENTS_TOPIC

    def __init__(
        self,
        bus: Bus,
        clock: Clock,
        telemetry: Telemetry,
        events: EventStore,
        notifiers: list[tuple[Notifier, RetryPolicy]],
    ) -> None:
        super().__init__(bus, clock, telemetry)
        self.events = events
        self.notifiers = notifiers
        self._sent = telemetry.counter(
            "opsmind_notifications_total", "Notification attempts by outcome", ("notifier", "outcome")
        )
        self._done = RecentKeys()
        self._muted = RecentKeys()  # incidents whose opening was muted: their resolution is too
        self._mutes = telemetry.counter(
            "opsmind_notifications_muted_total", "Incident events muted", ("event",)
        )

    async def handle(self, message: Message) -> None:
        ev: IncidentEvent = message.payload
        if ev.event not in NOTIFIED_EVENTS:
            return
        reason = await self._mute_reason(ev)
        if reason is not None:
            self._mutes.labels(ev.event).inc()
            await asyncio.to_thread(
                self.events.put,
                AuditEntry(
                    at=self.clock.now(),
                    service=ev.incident.service,
                    actor="opsmind:notify",
                    verb="mute",
                    subject=ev.incident.id,
                    detail={"event": ev.event, "reason": reason},
                ),
            )
            return
        await asyncio.gather(*(self._deliver(n, p, ev) for n, p in self.notifiers))

    async def _mute_reason(self, ev: IncidentEvent) -> str | None:
        if ev.event == "resolved" and ev.incident.id in self._muted:
            return "its opening was muted"
        silences = await asyncio.to_thread(self.events.find, Silence, limit=10_000)
        reason = SilenceMuter(silences).mutes(incident_labels(ev.incident), self.clock.now())
        if reason is not None and ev.event == "opened":
            self._muted.add(ev.incident.id)
        return reason

    async def _deliver(self, notifier: Notifier, policy: RetryPolicy, ev: IncidentEvent) -> None:
        key = (notifier.name, ev.incident.id, ev.event)
        if key in self._done:  # a redelivered event is not notified twice
            return
        result = NotifyResult(ok=False, detail="not attempted")
        attempts = 0
        for delay in [0.0, *policy.delays()]:
            if delay:
                await self.clock.sleep(delay)
            attempts += 1
            try:
                result = await notifier.notify(ev.event, ev.incident)
            except Exception as exc:  # a notifier bug must not kill the stage
                result = NotifyResult(ok=False, retryable=False, detail=f"notifier raised {exc!r}")
            self._sent.labels(notifier.name, "ok" if result.ok else "failed").inc()
            if result.ok or not result.retryable:
                break
        self._done.add(key)
        if not result.ok:
            log.error(
                "notification %s via %s failed after %d attempts: %s",
                ev.event,
                notifier.name,
                attempts,
                result.detail,
            )
        await asyncio.to_thread(
            self.events.put,
            AuditEntry(
                at=self.clock.now(),
                service=ev.incident.service,
                actor="opsmind:notify",
                verb="notify",
                subject=ev.incident.id,
                detail={
                    "notifier": notifier.name,
                    "event": ev.event,
                    "ok": result.ok,
                    "attempts": attempts,
                    "detail": result.detail,
                },
            ),
        )
