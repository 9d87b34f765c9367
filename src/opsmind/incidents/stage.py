"""The incidents stage: anomalies in, incidents out (opened, updated, resolved).

Anomalies of one service within the group window become one incident; an incident resolves once no
anomaly arrived for ``resolve_after_s``. With ``root_cause`` on and a sample store given, a new incident
carries the services most likely to have caused it (:mod:`opsmind.incidents.root_cause`), ranked when it
opens from the metrics before and since its first anomaly. Every change is persisted and published on
``incidents`` as an :class:`IncidentEvent`. Redelivered anomalies are recognised by id and ignored
(idempotent).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from opsmind.bus.dedup import RecentKeys
from opsmind.bus.protocols import Bus, Message
from opsmind.bus.stage import Stage
from opsmind.clock import Clock
from opsmind.config import IncidentSettings
from opsmind.incidents import grouping
from opsmind.incidents.root_cause import root_causes, topology_graph
from opsmind.store.protocols import EventStore, SampleStore
from opsmind.telemetry import Telemetry
from opsmind.types import Anomaly, AuditEntry, Incident, IncidentStatus

ANOMALIES_TOPIC = "anomalies"
INCIDENTS_TOPIC = "incidents"


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    event: Literal["opened", "updated", "resolved"]
    incident: Incident


class IncidentStage(Stage):
    name = "incidents"
    topic = ANOMALIES_TOPIC

    def __init__(
        self,
        bus: Bus,
        clock: Clock,
        telemetry: Telemetry,
        events: EventStore,
        settings: IncidentSettings,
        samples: SampleStore | None = None,
    ) -> None:
        super().__init__(bus, clock, telemetry)
        self.events = events
        self.samples = samples if settings.root_cause else None
        self.graph = topology_graph(settings.topology)
        self.settings = settings
        self.tick_interval = settings.check_interval_s
        self._open: dict[str, Incident] = {}
        self._seen = RecentKeys()
        # Anomalies of services without an open incident, until enough repeat to open one.
        self._pending: dict[str, list[Anomaly]] = {}
        self._opened = telemetry.counter("opsmind_incidents_opened_total", "Incidents opened")
        self._resolved = telemetry.counter("opsmind_incidents_resolved_total", "Incidents resolved")
        self._open_gauge = telemetry.gauge("opsmind_incidents_open", "Incidents currently open")

    async def start(self) -> None:
        # Pick up incidents that were open when the engine last stopped, so they keep grouping and resolve.
        for inc in await asyncio.to_thread(
            self.events.find, Incident, status=IncidentStatus.OPEN.value, limit=10_000
        ):
            if inc.service is not None:
                self._open[inc.service] = inc
        self._open_gauge.set(len(self._open))
        await super().start()

    async def handle(self, message: Message) -> None:
        anomaly: Anomaly = message.payload
        if anomaly.id in self._seen:
            return
        now = self.clock.now()
        svc = grouping.service_of(anomaly)
        current = self._open.get(svc)
        join, _ = grouping.joins(current, anomaly, self.settings.group_window_s)
        self._seen.add(anomaly.id)
        if join and current is not None:
            incident = grouping.add_anomaly(current, anomaly, now)
            event: Literal["opened", "updated"] = "updated"
        else:
            pending = sorted([*self._pending.get(svc, []), anomaly], key=lambda a: a.ts)
            # Only what can still count towards an incident is kept: the group window before the newest.
            recent = grouping.within_window(pending, self.settings.group_window_s)
            enough, _ = grouping.pending_enough(
                recent, self.settings.min_anomalies, self.settings.group_window_s
            )
            if not enough:
                self._pending[svc] = recent
                return
            if current is not None:
                await self._resolve(current, now, "superseded: a new incident opened after a quiet gap")
            incident = grouping.open_incident(recent[0], now)
            for a in recent[1:]:
                incident = grouping.add_anomaly(incident, a, now)
            incident = await self._rank(incident, now)
            self._pending.pop(svc, None)
            event = "opened"
            self._opened.inc()
        await asyncio.to_thread(self.events.put, incident)
        self._open[svc] = incident
        self._open_gauge.set(len(self._open))
        if event == "opened":
            await asyncio.to_thread(
                self.events.put,
                AuditEntry(
                    at=now,
                    service=svc,
                    actor="opsmind:incidents",
                    verb="open",
                    subject=incident.id,
                    detail={"reason": f"anomaly on {anomaly.series}", "anomaly": anomaly.id},
                ),
            )
        await self.bus.publish(INCIDENTS_TOPIC, IncidentEvent(event, incident))

    async def _rank(self, incident: Incident, now: float) -> Incident:
        if self.samples is None:
            return incident
        causes, why_not = await asyncio.to_thread(
            root_causes,
            self.samples,
            incident.opened_at,
            max(now, incident.last_anomaly_at),
            self.settings.root_cause_lookback_s,
            self.graph,
        )
        note = {"at": now, "event": "root_causes"}
        if why_not is not None:
            note["reason"] = why_not
        else:
            note["top"] = causes[0].service if causes else None
        return incident.model_copy(
            update={
                "root_causes": tuple(c.as_json() for c in causes),
                "timeline": (*incident.timeline, note),
            }
        )

    async def tick(self) -> None:
        now = self.clock.now()
        for svc, inc in list(self._open.items()):
            done, reason = grouping.should_resolve(inc, now, self.settings.resolve_after_s)
            if done:
                await self._resolve(inc, now, reason)
                self._open.pop(svc, None)
        self._open_gauge.set(len(self._open))

    async def _resolve(self, incident: Incident, now: float, reason: str) -> None:
        resolved = grouping.resolve(incident, now, reason)
        await asyncio.to_thread(self.events.put, resolved)
        await asyncio.to_thread(
            self.events.put,
            AuditEntry(
                at=now,
                service=resolved.service,
                actor="opsmind:incidents",
                verb="resolve",
                subject=resolved.id,
                detail={"reason": reason},
            ),
        )
        self._resolved.inc()
        await self.bus.publish(INCIDENTS_TOPIC, IncidentEvent("resolved", resolved))
