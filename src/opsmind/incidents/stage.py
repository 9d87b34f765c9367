"""The incidents stage: anomalies in, incidents out (opened, updated, reopened, resolved, moved by hand).

The decisions are the :class:`~opsmind.incidents.correlator.Correlator`'s (dedup, grouping by service,
topology and time, reopening, flapping, auto-resolve, priority); this stage persists what changed,
records it in the audit log and publishes it on ``incidents`` as an :class:`IncidentEvent`. With
``root_cause`` on and a sample store given, a new incident carries the services most likely to have
caused it (:mod:`opsmind.incidents.root_cause`), ranked when it opens from the metrics before and since
its first anomaly, and is filed under the top one when that is one of its services (a prediction
incident, a breach expected ahead, has no fault to rank yet). Redelivered
anomalies are recognised by id and ignored (idempotent). A quiet incident is held open while an
objective of its services is breached (:mod:`opsmind.incidents.breach`) or an Alertmanager alert in it
still fires (:mod:`opsmind.incidents.firing`, told by the webhook route through the engine).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial
from typing import Literal

import networkx as nx

from opsmind.bus.protocols import Bus, Message
from opsmind.bus.stage import Stage
from opsmind.clock import Clock
from opsmind.config import IncidentSettings, PredictSettings
from opsmind.incidents import grouping
from opsmind.incidents.breach import breaches
from opsmind.incidents.correlator import Change, ChangeKind, Correlator
from opsmind.incidents.feedback import NoiseClassifier
from opsmind.incidents.firing import FiringAlerts
from opsmind.incidents.root_cause import callees, root_causes
from opsmind.incidents.topology import Topology
from opsmind.store.protocols import EventStore, SampleStore
from opsmind.telemetry import Telemetry
from opsmind.types import Anomaly, AuditEntry, Incident, IncidentStatus

ANOMALIES_TOPIC = "anomalies"
INCIDENTS_TOPIC = "incidents"


EventKind = Literal["opened", "updated", "resolved"]
# What a change is announced as: a reopened incident is firing again, a manual move is an update unless
# it resolves the incident.
ANNOUNCE: dict[ChangeKind, EventKind] = {
    "opened": "opened",
    "reopened": "opened",
    "updated": "updated",
    "transitioned": "updated",
    "resolved": "resolved",
}
AUDIT_VERB = {"opened": "open", "reopened": "reopen", "resolved": "resolve"}


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    event: EventKind
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
        noise: NoiseClassifier | None = None,
        objectives: PredictSettings | None = None,
        topology: Topology | None = None,
        alerts: FiringAlerts | None = None,
    ) -> None:
        super().__init__(bus, clock, telemetry)
        self.events = events
        self.samples = samples if settings.root_cause else None
        # What keeps a quiet incident open (:mod:`opsmind.incidents.breach`); None: nothing does.
        self._objectives: tuple[SampleStore, PredictSettings] | None = None
        if samples is not None and objectives is not None and settings.hold_while_breaching:
            self._objectives = (samples, objectives)
        # The engine's shared call graph (declared and registered); on its own, the declared one.
        self.topology = topology if topology is not None else Topology(settings.topology)
        # The external alerts still firing, as the engine's webhook route tells them; on its own, an empty
        # one (nothing told, nothing held).
        self.alerts = alerts if alerts is not None else FiringAlerts(settings.alert_firing_hold_s)
        self.settings = settings
        self.tick_interval = settings.check_interval_s
        self.correlator = Correlator(settings, self.topology, noise)
        self._lock = asyncio.Lock()  # anomalies, ticks and operators' moves change the same state
        self._opened = telemetry.counter("opsmind_incidents_opened_total", "Incidents opened")
        self._resolved = telemetry.counter("opsmind_incidents_resolved_total", "Incidents resolved")
        self._open_gauge = telemetry.gauge("opsmind_incidents_open", "Incidents currently open")

    @property
    def graph(self) -> nx.DiGraph | None:
        return self.topology.graph

    async def start(self) -> None:
        # Pick up incidents that were active when the engine last stopped, so they keep grouping and resolve.
        for status in (s for s in IncidentStatus if s.active):
            found = await asyncio.to_thread(self.events.find, Incident, status=status.value, limit=10_000)
            self.correlator.restore(found)
        self._open_gauge.set(len(self.correlator.active))
        await super().start()

    async def handle(self, message: Message) -> None:
        anomaly: Anomaly = message.payload
        async with self._lock:
            now = self.clock.now()
            for change in self.correlator.add(anomaly, now):
                if change.event == "opened":
                    ranked = await self._rank(change.incident, now)
                    change = Change(change.event, ranked, change.reason, change.anomalies)
                    self.correlator.replace(change.incident)
                await self._emit(change, now, "opsmind:incidents")

    async def transition(self, incident_id: str, to: IncidentStatus, by: str, reason: str) -> Incident:
        """An operator's move (acknowledge, mitigating, resolve, reopen). KeyError: not an incident this
        stage holds (unknown, or resolved too long ago to reopen); ValueError: a move not allowed."""
        async with self._lock:
            now = self.clock.now()
            change = self.correlator.transition(incident_id, to, now, by, reason)
            await self._emit(change, now, by)
            return change.incident

    async def _emit(self, change: Change, now: float, actor: str) -> None:
        incident = change.incident
        await asyncio.to_thread(self.events.put, incident)
        if change.event in ("opened", "reopened"):
            self._opened.inc()
        elif change.event == "resolved" or not incident.status.active:
            self._resolved.inc()
        verb = AUDIT_VERB.get(change.event) or (
            incident.status.value if change.event == "transitioned" else None
        )
        if verb is not None:
            await asyncio.to_thread(
                self.events.put,
                AuditEntry(
                    at=now,
                    service=incident.service,
                    actor=actor,
                    verb=verb,
                    subject=incident.id,
                    detail={"reason": change.reason, "priority": incident.priority},
                ),
            )
        self._open_gauge.set(len(self.correlator.active))
        event = "resolved" if not incident.status.active else ANNOUNCE[change.event]
        await self.bus.publish(INCIDENTS_TOPIC, IncidentEvent(event, incident))

    async def _rank(self, incident: Incident, now: float) -> Incident:
        # A predicted breach has not happened: there is no fault time to rank causes around.
        if self.samples is None or incident.type == "prediction":
            return incident
        graph = self.graph  # one version for the ranking and the filing
        causes, why_not = await asyncio.to_thread(
            root_causes,
            self.samples,
            incident.opened_at,
            max(now, incident.last_anomaly_at),
            self.settings.root_cause_lookback_s,
            graph,
        )
        note = {"at": now, "event": "root_causes"}
        if why_not is not None:
            note["reason"] = why_not
        else:
            note["top"] = causes[0].service if causes else None
        update: dict[str, object] = {
            "root_causes": tuple(c.as_json() for c in causes),
            "timeline": (*incident.timeline, note),
        }
        if causes:
            reach = partial(callees, graph)
            update.update(grouping.filed_under_cause(incident, causes[0].service, reach))
        return incident.model_copy(update=update)

    async def tick(self) -> None:
        async with self._lock:
            now = self.clock.now()
            changes = await asyncio.to_thread(self.correlator.tick, now, partial(self._hold, now))
            for change in changes:
                await self._emit(change, now, "opsmind:incidents")

    def _hold(self, now: float, incident: Incident) -> str | None:
        """Why ``incident`` must stay open although it is quiet: an alert in it that Alertmanager still
        reports firing, else the objectives its services still breach. The alert comes first: it is a
        lookup in memory, while the breaches read the sample store."""
        firing = self.alerts.holding(incident, now)
        if firing is not None:
            return firing
        if self._objectives is None:
            return None
        samples, objectives = self._objectives
        found = breaches(samples, objectives, grouping.services_of(incident), incident.opened_at, now)
        return "; ".join(str(b) for b in found) or None
