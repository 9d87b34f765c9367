"""The notify stage: incident events in, notifications out, on Alertmanager-like group timers.

Each incident is a notification group (:mod:`opsmind.notify.dispatch` decides, purely, what is due:
``group_wait``, ``group_interval``, ``repeat_interval``, the flap filter). The stage folds every event
into its group and flushes what is due right away and on every tick (``flush_interval_s`` of the
engine clock). Before sending it asks each muter in turn (:mod:`opsmind.incidents.muting`: silences,
inhibition by an upstream incident, maintenance windows, flapping); a mute is audited once per
incident, event and muter, with the muter's name and reason, and nothing is sent. A muted opening also
mutes the resolution; a resolution whose opening *was* sent always goes out, so no receiver is left
holding an incident open. Each notifier is tried up to ``1 + max_retries`` times while it reports a
retryable failure, waiting ``backoff * 2**n`` of engine time between attempts; the outcome of every
delivery is audited.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from opsmind.bus.dedup import RecentKeys
from opsmind.bus.protocols import Bus, Message
from opsmind.bus.stage import Stage
from opsmind.clock import Clock
from opsmind.config import NotifySettings
from opsmind.incidents.feedback import NoiseClassifier, NoiseMuter
from opsmind.incidents.muting import (
    FlappingMuter,
    InhibitionMuter,
    MaintenanceMuter,
    Muter,
    SilenceMuter,
    incident_labels,
)
from opsmind.incidents.stage import INCIDENTS_TOPIC, IncidentEvent
from opsmind.incidents.topology import Topology
from opsmind.notify import dispatch
from opsmind.notify.base import Notifier, NotifyResult
from opsmind.store.protocols import EventStore
from opsmind.telemetry import Telemetry
from opsmind.types import AuditEntry, Incident, Silence

log = logging.getLogger(__name__)
DISPATCH = "group_wait"  # the "muter" named in the audit when the flap filter drops a resolution


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
        settings: NotifySettings | None = None,
        topology: Topology | Mapping[str, Sequence[str]] | None = None,
        noise: NoiseClassifier | None = None,
    ) -> None:
        super().__init__(bus, clock, telemetry)
        self.noise = noise  # operators' noise model: incidents it says to suppress are muted
        self.events = events
        self.notifiers = notifiers
        self.settings = settings or NotifySettings()
        # The call graph for inhibition, read at each decision: registrations change it.
        self.topology = topology if isinstance(topology, Topology) else Topology(topology)
        self.tick_interval = self.settings.flush_interval_s
        self._maintenance = MaintenanceMuter(self.settings.maintenance_windows)
        self._groups: dict[str, dispatch.Group] = {}
        self._active: dict[str, Incident] = {}  # latest version of every active incident, for inhibition
        self._finished = RecentKeys()  # (incident id, reopened): groups with nothing left to send
        self._mute_recorded = RecentKeys()
        # Redelivered events need no dedup of their own: folding the same incident again changes nothing
        # that is due, and a finished group's events are ignored.
        self._lock = asyncio.Lock()  # handle and tick both flush; one decides at a time
        self._sent = telemetry.counter(
            "opsmind_notifications_total", "Notification attempts by outcome", ("notifier", "outcome")
        )
        self._mutes = telemetry.counter(
            "opsmind_notifications_muted_total", "Incident events muted", ("event",)
        )

    async def handle(self, message: Message) -> None:
        ev: IncidentEvent = message.payload
        inc = ev.incident
        if (inc.id, inc.reopened) in self._finished:
            return  # a redelivered event of a group that has nothing left to send
        now = self.clock.now()
        async with self._lock:
            group = dispatch.fold(self._groups.get(inc.id), ev.event, inc, now)
            self._groups[inc.id] = group
            latest = group.incident
            if latest.status.active:
                self._active[inc.id] = latest
            else:
                self._active.pop(inc.id, None)
        await self._flush([inc.id])

    async def tick(self) -> None:
        await self._flush(list(self._groups))

    async def _flush(self, ids: list[str]) -> None:
        """Send what is due for the groups ``ids``; deliveries run outside the lock (retries sleep)."""
        deliveries: list[tuple[str, Incident]] = []
        async with self._lock:
            now = self.clock.now()
            muters: list[Muter] | None = None  # built once, and only if something is due
            for iid in ids:
                group = self._groups.get(iid)
                if group is None:
                    continue
                decision, reason = dispatch.decide(group, now, self.settings)
                if decision.action == "send" and decision.event is not None:
                    if decision.event != "resolved":  # a resolution closes what was sent: never muted
                        muters = muters if muters is not None else await self._muters()
                        hit = self._ask(muters, group.incident, now)
                        if hit is not None:
                            await self._record_mute(group.incident, decision.event, *hit)
                            group = dispatch.muted(group, decision.event, *hit)
                            self._groups[iid] = group
                            continue
                    deliveries.append((decision.event, group.incident))
                    group = dispatch.sent(group, decision.event, now)
                elif decision.action == "drop" and group.last_sent_at is None:
                    muter = group.opening_mute[0] if group.opening_mute else DISPATCH
                    await self._record_mute(group.incident, "resolved", muter, reason)
                self._groups[iid] = group
                if dispatch.finished(group, decision):
                    self._forget(group.incident)
        for event, incident in deliveries:
            await asyncio.gather(*(self._deliver(n, p, event, incident) for n, p in self.notifiers))

    def _forget(self, incident: Incident) -> None:
        self._groups.pop(incident.id, None)
        self._active.pop(incident.id, None)
        self._finished.add((incident.id, incident.reopened))

    async def _muters(self) -> list[Muter]:
        silences = await asyncio.to_thread(self.events.find, Silence, limit=10_000)
        active = list(self._active.values())
        muters: list[Muter] = [
            SilenceMuter(silences),
            InhibitionMuter(active, self.topology.edges, self.settings.inhibition_slack_s),
            self._maintenance,
            FlappingMuter(active),
        ]
        if self.noise is not None and self.noise.ready:
            muters.append(NoiseMuter.judging(self.noise, active))
        return muters

    @staticmethod
    def _ask(muters: list[Muter], incident: Incident, now: float) -> tuple[str, str] | None:
        labels = incident_labels(incident)
        for muter in muters:
            reason = muter.mutes(labels, now)
            if reason is not None:
                return muter.name, reason
        return None

    async def _record_mute(self, incident: Incident, event: str, muter: str, reason: str) -> None:
        key = (incident.id, incident.reopened, event, muter)
        if key in self._mute_recorded:  # a group stays muted tick after tick: say so once
            return
        self._mute_recorded.add(key)
        self._mutes.labels(event).inc()
        await asyncio.to_thread(
            self.events.put,
            AuditEntry(
                at=self.clock.now(),
                service=incident.service,
                actor="opsmind:notify",
                verb="mute",
                subject=incident.id,
                detail={"event": event, "muter": muter, "reason": reason},
            ),
        )

    async def _deliver(self, notifier: Notifier, policy: RetryPolicy, event: str, incident: Incident) -> None:
        result = NotifyResult(ok=False, detail="not attempted")
        attempts = 0
        for delay in [0.0, *policy.delays()]:
            if delay:
                await self.clock.sleep(delay)
            attempts += 1
            try:
                result = await notifier.notify(event, incident)
            except Exception as exc:  # a notifier bug must not kill the stage
                result = NotifyResult(ok=False, retryable=False, detail=f"notifier raised {exc!r}")
            self._sent.labels(notifier.name, "ok" if result.ok else "failed").inc()
            if result.ok or not result.retryable:
                break
        if not result.ok:
            log.error(
                "notification %s via %s failed after %d attempts: %s",
                event,
                notifier.name,
                attempts,
                result.detail,
            )
        await asyncio.to_thread(
            self.events.put,
            AuditEntry(
                at=self.clock.now(),
                service=incident.service,
                actor="opsmind:notify",
                verb="notify",
                subject=incident.id,
                detail={
                    "notifier": notifier.name,
                    "event": event,
                    "ok": result.ok,
                    "attempts": attempts,
                    "detail": result.detail,
                },
            ),
        )
