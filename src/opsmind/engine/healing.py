"""The heal stage: incidents in, guarded remediations out, and a person's say over them.

It consumes ``incidents`` (the incident stage's :class:`~opsmind.incidents.stage.IncidentEvent`) under its
own consumer group, as the notify stage does. When an incident opens it reads the service-level metrics
around it from the sample store (:func:`~opsmind.incidents.root_cause.columns_from_store`) and observes
it with the same builder the classifier was trained and benchmarked with
(:func:`~opsmind.heal.observation.observe_columns`: the root-cause ranking over the declared call graph,
signals in onset order, platform events, the filed service's levels and trends, the declared
``heal.inventory``), and asks the :class:`~opsmind.heal.healer.Healer` for a remediation for the
ranking's top service, then the next ones while nothing is left to try there, with ``impact`` when
users are affected (:func:`~opsmind.engine.heal_reading.users_affected`). Without metrics to rank (an
incident from external alerts only) the observation comes from the incident's own anomalies
(:func:`~opsmind.engine.heal_reading.observe`).

Afterwards (:meth:`HealStage.tick`): an incident the healer cannot classify and that harms nobody is
observed again every ``heal.observe_again_s``, and counts as affecting users once it has lasted
:data:`~opsmind.heal.followup.PATIENCE_S` (the healer then tries its best guess, cautiously); when a
remediation of a still-unhealthy incident ends, or could not start, the healer is asked again
``heal.settle_s`` later (while one of its proposals waits for a person, up to ``heal.approval_wait_s``,
nothing else is proposed for it) - about what is *still* broken once a fix verified, and beside a remediation
stuck verifying (:func:`opsmind.heal.followup.looks`, the policy the chaos benchmark measures). When
nothing is left to try, a person is told once. A resolved incident tells the healer its last verified
remediation worked. Every ``heal.tick_interval_s`` of the engine clock the healer drives its
remediations (steps, verification, rollback). At start, half-done remediations left by a restart are
made safe (:meth:`Healer.recover`) before anything else runs.

People act through :meth:`HealStage.approve`, :meth:`HealStage.reject` and :meth:`HealStage.set_mode`
(the API's ``/remediations`` and ``/automation``), pause one service (:meth:`HealStage.set_paused`), roll
a remediation back (:meth:`HealStage.roll_back`) and run a runbook of their choice on an incident
(:meth:`HealStage.advise`, :meth:`HealStage.run_runbook`). The mode and the pauses are persisted: an
operator who switched automation off, or paused a service, in an emergency does not get it back on by a
restart.

Every decision is audited (the healer's choice with its explanation here; proposals, guard verdicts,
steps, approvals and recoveries by the executor). An outcome that asks for a person is sent to the
engine's notifiers as event ``remediation_escalated`` with the incident, its timeline carrying the
remediation and the reason (a guard's refusal once per incident and guard: the healer spares a person
the same refusal of each follow-up); notifier retries and muting are the notify stage's business and are
not applied to these (one attempt each, audited).

The healer is synchronous and not thread-safe: every call to it runs in a worker thread under one lock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import networkx as nx

from opsmind.bus.dedup import RecentKeys
from opsmind.bus.protocols import Bus, Message
from opsmind.bus.stage import Stage
from opsmind.clock import Clock
from opsmind.config import ConfigError, HealSettings, PredictSettings
from opsmind.engine.heal_reading import FIELD_EVENTS_S, StoreView, fields, observe, users_affected
from opsmind.heal.classify import FaultClassifier, IncidentObservation, Prediction
from opsmind.heal.executor import Actuate, Outcome
from opsmind.heal.fields import SeenEvent
from opsmind.heal.followup import PATIENCE_S, held_services, looks
from opsmind.heal.guards import AutomationMode, Guards, GuardSettings, Pause, RateLimit
from opsmind.heal.healer import RISK_LEVEL, HealDecision, Healer, HealRequest, RunbookOption
from opsmind.heal.observation import BASELINE_S, Inventory, entry_service
from opsmind.heal.runbook import Runbook, RunbookError, bundled_dir, load_library
from opsmind.heal.state import Remediation, RemediationState
from opsmind.incidents.breach import breaches
from opsmind.incidents.grouping import services_of
from opsmind.incidents.root_cause import callees, columns_from_store
from opsmind.incidents.stage import INCIDENTS_TOPIC, IncidentEvent
from opsmind.incidents.topology import Topology
from opsmind.notify.base import Notifier
from opsmind.store.protocols import EventStore, SampleStore
from opsmind.telemetry import Telemetry
from opsmind.types import Anomaly, AuditEntry, Decision, Incident

log = logging.getLogger(__name__)
ACTOR = "opsmind:heal"
MODE_RECORD = "heal:automation_mode"  # one Decision record holds the mode set by a person
PAUSES_RECORD = "heal:paused_services"  # one Decision record holds every service's pause
ESCALATED = "remediation_escalated"
APPROVED = RemediationState.APPROVED
ACTIVE_S = 60.0
"""An incident is still unhealthy when one of its services had an anomaly this recently."""


def guard_settings(s: HealSettings) -> GuardSettings:
    above = -1 if s.approval_above_risk == "none" else RISK_LEVEL[s.approval_above_risk]
    return GuardSettings(
        mode=AutomationMode(s.mode),
        approval_above_risk=above,
        cooldown_service_s=s.cooldown_service_s,
        cooldown_runbook_s=s.cooldown_runbook_s,
        rate_service=RateLimit(s.rate_service.max_count, s.rate_service.window_s),
        rate_global=RateLimit(s.rate_global.max_count, s.rate_global.window_s),
        blast_radius_pct=s.blast_radius_pct,
        blast_radius_min_replicas=s.blast_radius_min_replicas,
    )


def runbook_library(s: HealSettings) -> dict[str, Runbook]:
    """The bundled runbooks and the user's folders, all validated now: a bad one stops the start-up
    with every problem named (file, step, field)."""
    dirs = [*([bundled_dir()] if s.bundled_runbooks else []), *(Path(d) for d in s.runbook_dirs)]
    try:
        library = load_library(dirs)
    except RunbookError as exc:
        lines = "\n".join(str(p) for p in exc.problems)
        raise ConfigError(f"heal.runbook_dirs: invalid runbooks\n{lines}") from exc
    if not library:
        raise ConfigError("heal: no runbooks loaded (bundled_runbooks is off and runbook_dirs has none)")
    return library


def inventory(s: HealSettings) -> Inventory:
    return Inventory(
        kinds={name: e.kind for name, e in s.inventory.items()},
        memory_limit_bytes={
            name: e.memory_limit_mb * 1024 * 1024
            for name, e in s.inventory.items()
            if e.memory_limit_mb is not None
        },
        entry=s.entry_service,
    )


def fault_classifier(s: HealSettings) -> FaultClassifier:
    """The trained classifier at ``classifier_path``; an untrained one (every kind ``unknown``) without."""
    if s.classifier_path is None:
        return FaultClassifier()
    try:
        return FaultClassifier.load(s.classifier_path)
    except Exception as exc:
        raise ConfigError(f"heal.classifier_path: cannot load {s.classifier_path}: {exc}") from exc


class HealStage(Stage):
    name = "heal"
    topic = INCIDENTS_TOPIC

    def __init__(
        self,
        bus: Bus,
        clock: Clock,
        telemetry: Telemetry,
        samples: SampleStore,
        events: EventStore,
        settings: HealSettings,
        actuate: Actuate,
        notifiers: Sequence[Notifier] = (),
        group_window_s: float = 300.0,
        graph: Topology | nx.DiGraph | None = None,
        objectives: PredictSettings | None = None,
        registered_kinds: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        super().__init__(bus, clock, telemetry)
        self.objectives = objectives  # declared SLOs: a breach keeps an incident unhealthy
        self.events = events
        self.settings = settings
        self.notifiers = list(notifiers)
        self.group_window_s = group_window_s
        # The call graph, declared and registered, read live (None inside: ranked without one).
        self.topology = Topology.of(graph)
        self.inventory = inventory(settings)
        # The service registry's types (blocking store read): a service heal.inventory does not declare
        # takes the type it was registered with; the configuration wins where both say.
        self.registered_kinds = registered_kinds
        self.tick_interval = settings.tick_interval_s
        self.view = StoreView(samples, events, clock)
        self._escalations: list[Outcome] = []
        self.healer = Healer(
            events,
            clock,
            fault_classifier(settings),
            actuate,
            self.view.read,
            library=runbook_library(settings),
            guards=Guards(guard_settings(settings)),
            replicas=self._replicas,
            escalate=self._escalations.append,
            actor=ACTOR,
            before=self.view.level_before,
        )
        if self.healer.unsupported:
            log.info(
                "heal: the %s actuator cannot carry out %d runbooks, never chosen: %s",
                settings.actuator,
                len(self.healer.unsupported),
                ", ".join(sorted(self.healer.unsupported)),
            )
        self._lock = asyncio.Lock()
        self._asked = RecentKeys()  # (incident, reopened): a redelivered opening is not asked twice
        # incident -> when to ask about it again: unclear and harmless, or a remediation of it ended
        self._again: dict[str, float] = {}
        self._gave_up: set[str] = set()  # incidents nothing is left to try for (a person was told)
        self._told: list[tuple[str, str | None, dict[str, Any]]] = []  # (incident, service, note) to send
        self._kicks: set[asyncio.Task[None]] = set()
        self._decisions = telemetry.counter(
            "opsmind_heal_decisions_total", "Healer decisions by what was done", ("result",)
        )

    def _replicas(self, service: str) -> int | None:
        value = self.view.service_level("replicas_desired", service)
        return None if value is None else int(value)

    async def start(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self._restore_mode)
            await asyncio.to_thread(self._restore_pauses)
            outcomes = await asyncio.to_thread(self.healer.recover)
            for o in outcomes:
                log.warning("heal: after restart, remediation %s: %s", o.remediation.id, o.reason)
                if o.escalate:
                    self._escalations.append(o)
        await self._send_escalations()
        await super().start()

    async def stop(self) -> None:
        for task in list(self._kicks):
            task.cancel()
        await asyncio.gather(*self._kicks, return_exceptions=True)
        await super().stop()

    # -- incidents in --

    async def handle(self, message: Message) -> None:
        ev: IncidentEvent = message.payload
        inc = ev.incident
        if inc.type == "prediction":
            return  # a breach expected ahead: nothing has failed yet, the scaler acts on it
        if ev.event == "resolved" or not inc.status.active:
            async with self._lock:
                self._again.pop(inc.id, None)
                self._gave_up.discard(inc.id)
                await asyncio.to_thread(self.healer.resolved, inc.id)
            return
        if ev.event == "opened" and (inc.id, inc.reopened) not in self._asked:
            self._asked.add((inc.id, inc.reopened))
            # The event may have waited in the bus (a backfill opens and resolves incidents in a burst):
            # an incident that has resolved since needs no remediation, nor a person asked to approve one.
            current = await asyncio.to_thread(self.events.get, Incident, inc.id)
            if current is not None and not current.status.active:
                return
            async with self._lock:
                await self._ask(current or inc)
                # Deciding takes seconds on a busy engine, and a backfill resolves incidents in that
                # time: one that ended meanwhile gets no proposal left on the approval list, and no
                # person paged to approve it.
                after = await asyncio.to_thread(self.events.get, Incident, inc.id)
                if after is not None and not after.status.active:
                    withdrawn = await asyncio.to_thread(self.healer.resolved, inc.id)
                    ids = {rem.id for rem in withdrawn}
                    self._escalations[:] = [o for o in self._escalations if o.remediation.id not in ids]
            await self._send_escalations()

    async def _ask(self, inc: Incident, held: frozenset[str] = frozenset()) -> HealDecision | None:
        """Ask the healer about the incident's likeliest root cause; when nothing is left to try there,
        about the next services (see :func:`opsmind.heal.followup.looks`). Then decide when to ask
        again: an unclear harmless incident after ``observe_again_s``; one whose remediation could not
        start (refused, awaiting a person), that has nothing to do beside a remediation still verifying or
        whose runbooks' prechecks do not hold yet (``deferred``) after ``settle_s``; one with a remediation
        under way once it ends (see :meth:`tick`). When nothing is left to try, a person is told once."""
        now = self.clock.now()
        decision: HealDecision | None = None
        deferred = False  # a runbook passed over because its precheck does not hold yet
        requests = await asyncio.to_thread(lambda: list(self._requests(inc, now, held)))
        for request in requests:
            decision = await asyncio.to_thread(self.healer.handle, request)
            await self._audit_decision(now, request, decision)
            deferred = deferred or bool(decision.deferred)
            if decision.runbook is not None or decision.waiting:
                break
        nothing_yet = decision is not None and decision.runbook is None and not decision.waiting
        if decision is None or (nothing_yet and (held or deferred)):
            self._again[inc.id] = now + self.settings.settle_s  # nothing (else) to do yet
        elif decision.waiting:
            self._again[inc.id] = now + self.settings.observe_again_s
        elif decision.runbook is None:
            self._again.pop(inc.id, None)
            if inc.id not in self._gave_up:
                self._gave_up.add(inc.id)
                self._told.append(
                    (inc.id, inc.service, {"reason": f"nothing left to try: {decision.explanation}"})
                )
        else:
            # Refused: the next option after settle_s; held by a guard that refused it before: the same
            # runbook once the guard clears (asked after settle_s). Awaiting a person: once they decided.
            # Under way: once it ends, or beside it once it is stuck verifying (held_services; a second
            # fault may be what keeps its check from holding).
            self._again[inc.id] = now + self.settings.settle_s
        return decision

    async def _audit_decision(self, now: float, request: HealRequest, decision: HealDecision) -> None:
        rem = decision.outcome.remediation if decision.outcome is not None else None
        result = (
            "waiting"
            if decision.waiting
            else "held"
            if decision.held
            else (rem.state.value if rem else "none")
        )
        self._decisions.labels(result).inc()
        detail = {
            "explanation": decision.explanation,
            "kind": decision.kind,
            "confidence": decision.prediction.confidence,
            "runbook": decision.runbook,
            "remediation_id": rem.id if rem is not None else None,
            "waiting": decision.waiting,
            "held": decision.held,
            "impact": request.impact,
            "skipped": list(decision.skipped),
            "deferred": list(decision.deferred),
            "filed_under": request.service,
        }
        await self._audit(now, request.service, "heal_decide", request.incident_id, detail)

    def fleet_inventory(self) -> Inventory:
        """``heal.inventory`` with the service registry's types for the services it does not declare
        (blocking: a store read)."""
        if self.registered_kinds is None:
            return self.inventory
        return dataclasses.replace(self.inventory, kinds={**self.registered_kinds(), **self.inventory.kinds})

    def _requests(
        self, inc: Incident, now: float, held: frozenset[str] = frozenset(), by_hand: bool = False
    ) -> Iterator[HealRequest]:
        """The requests to put to the healer, best first: observations made by the engine's shared
        builder from the service-level metrics around the incident (as the classifier was trained and
        benchmarked), filed under the ranking's services; when the metrics cannot be ranked (too little
        history, an incident from external alerts only), one from the incident's own anomalies, filed
        under its service. When only what verified remediations explain is left, nothing is asked of the
        healer, except ``by_hand`` (a person asking for advice or running a runbook): then the incident's
        own anomalies still make one request, so the manual override is always there."""
        impact = users_affected(inc, self.settings.impact_priority) or now - inc.opened_at >= PATIENCE_S
        recent = self.view.platform_events(now - FIELD_EVENTS_S)
        seen = [SeenEvent(e.at, e.reason, e.message, e.service, e.node) for e in recent]
        times, cols = columns_from_store(self.view.samples, inc.opened_at - BASELINE_S, now)
        scope = self._scope(inc)
        inventory = self.fleet_inventory()
        graph = self.topology.graph  # one version for this whole request
        entry_rate = f"{entry_service(inventory, graph, cols, '')}_request_rate"
        cols = {c: v for c, v in cols.items() if c.split("_", 1)[0] in scope or c == entry_rate}
        found: list[tuple[IncidentObservation, str]] = []
        if cols:
            try:
                found = list(
                    looks(
                        self.healer,
                        inc.id,
                        inc.opened_at,
                        now,
                        times,
                        cols,
                        seen,
                        graph,
                        inventory,
                        held,
                    )
                )
            except ValueError as exc:  # e.g. nothing before the opening to compare with
                log.info("heal: incident %s: metrics cannot be ranked (%s); using its anomalies", inc.id, exc)
                found = []
            else:
                if not found and not by_hand:
                    return  # only what verified or held remediations explain is left: nothing to ask now
        if not found:
            since = inc.opened_at - self.group_window_s
            anomalies = [
                a
                for s in services_of(inc)
                for a in self.events.find(Anomaly, service=s, since=since, until=now, limit=10_000)
            ]
            found = [(observe(self.view, inc, anomalies, now), inc.service or "")]
        seen_services: set[str] = set()
        for observation, service in found:
            if service in seen_services:
                continue
            seen_services.add(service)
            yield HealRequest(
                inc.id, service, observation, fields(self.view, service, now, seen), impact, inc.opened_at
            )

    def _scope(self, inc: Incident) -> set[str]:
        """The services a remediation for ``inc`` may target: its own, and those they call (directly or
        not) in the declared call graph - a root cause sits downstream of its symptoms. Without a graph,
        only its own: OpsMind does not act on a service that is not part of the incident."""
        own = set(inc.services) | ({inc.service} if inc.service else set())
        graph = self.topology.graph
        return own.union(*(callees(graph, s) for s in own))

    # -- the loop --

    async def tick(self) -> None:
        async with self._lock:
            outcomes = await asyncio.to_thread(self.healer.tick)
            now = self.clock.now()
            for outcome in outcomes:
                rem = outcome.remediation
                if rem.finished and rem.incident_id is not None:
                    # It ended: if its incident goes on, ask again once things settle.
                    due = now + self.settings.settle_s
                    self._again[rem.incident_id] = max(self._again.get(rem.incident_id, due), due)
            for iid in [i for i, at in self._again.items() if at <= now]:
                inc = await asyncio.to_thread(self.events.get, Incident, iid)
                if inc is None or not inc.status.active:
                    self._again.pop(iid, None)
                    continue
                if not await asyncio.to_thread(self._unhealthy, inc, now):
                    continue  # quiet for now: looked at again on the next tick until it resolves
                since = now - self.settings.approval_wait_s
                if await asyncio.to_thread(self.healer.awaiting_person, iid, since):
                    # A person is deciding on a proposal: a second one for the same incident (the next
                    # option, on another service) would ask them twice. Asked again once they have, or
                    # once they have let it wait approval_wait_s.
                    continue
                held: frozenset[str] = frozenset()
                if self.healer.busy_with(iid):
                    stuck = held_services(self.healer, now, incident_id=iid)
                    if not stuck:
                        continue  # one of its remediations is still acting or verifying
                    held = stuck
                await self._ask(inc, held)
        await self._send_escalations()

    def _unhealthy(self, inc: Incident, now: float) -> bool:
        """One of the incident's services had an anomaly in the last ``ACTIVE_S``, or breaches an objective
        it met before (:mod:`opsmind.incidents.breach`: the detectors may have got used to a lasting
        fault that users still feel)."""
        if now - inc.last_anomaly_at <= ACTIVE_S:
            return True
        services = services_of(inc)
        if any(self.events.find(Anomaly, service=s, since=now - ACTIVE_S, limit=1) for s in services):
            return True
        return self.objectives is not None and bool(
            breaches(self.view.samples, self.objectives, services, inc.opened_at, now)
        )

    def kick(self) -> None:
        """Drive the remediations now rather than on the next tick (after an approval)."""
        task = asyncio.create_task(self.tick())
        self._kicks.add(task)
        task.add_done_callback(self._kicks.discard)

    # -- people --

    async def approve(self, remediation_id: str, who: str, why: str) -> Remediation:
        """KeyError: unknown; InvalidTransition: not awaiting approval; ValueError: no who or why."""
        async with self._lock:
            rem = await asyncio.to_thread(self.healer.executor.approve, remediation_id, who=who, why=why)
        self.kick()
        return rem

    async def reject(self, remediation_id: str, who: str, why: str) -> Remediation:
        async with self._lock:
            return await asyncio.to_thread(self.healer.executor.reject, remediation_id, who=who, why=why)

    @property
    def mode(self) -> AutomationMode:
        return self.healer.guards.settings.mode

    async def set_mode(self, mode: AutomationMode, who: str, why: str) -> dict[str, Any]:
        """Switch automation off, to dry run or on (takes effect at the next guard check or step)."""
        async with self._lock:
            now = self.clock.now()
            before = self.mode
            guards = self.healer.guards
            guards.settings = dataclasses.replace(guards.settings, mode=mode)
            value = {"mode": mode.value, "who": who, "why": why, "previous": before.value}
            record = Decision(id=MODE_RECORD, at=now, name="automation_mode", value=value, reasons=(why,))
            entry = AuditEntry(
                at=now, actor=f"user:{who}", verb="automation_mode", subject="automation", detail=value
            )
            await asyncio.to_thread(self.events.put_many, [record, entry])
            return {**value, "at": now}

    def changed_by(self) -> dict[str, Any] | None:
        """Who set the mode last and why (None: it is the configured one)."""
        record = self.events.get(Decision, MODE_RECORD)
        return None if record is None else {**record.value, "at": record.at}

    def _restore_mode(self) -> None:
        record = self.events.get(Decision, MODE_RECORD)
        if record is None:
            return
        mode = AutomationMode(record.value["mode"])
        guards = self.healer.guards
        if mode is not guards.settings.mode:
            log.warning(
                "heal: automation mode %s (set by %s: %s) overrides the configured %s",
                mode.value,
                record.value.get("who"),
                record.value.get("why"),
                guards.settings.mode.value,
            )
        guards.settings = dataclasses.replace(guards.settings, mode=mode)

    async def use_classifier(self, classifier: FaultClassifier, note: str) -> None:
        """Swap in another fault classifier (e.g. one trained in the background); the next incident is
        classified by it. Audited with ``note`` (where it came from)."""
        async with self._lock:
            before = self.healer.classifier
            self.healer.classifier = classifier
            if classifier.ready and not before.ready:
                # Proposals made without it treated every incident as unknown: their risky restarts wait
                # for a person (for approval_wait_s before the healer asks again), while the trained
                # classifier may find a runbook that is safe to run at once. Their incidents are looked
                # at again on the next tick.
                why = "superseded: proposed before the fault classifier was trained; asked again"
                withdrawn = await asyncio.to_thread(self.healer.reconsider, why)
                now = self.clock.now()
                for rem in withdrawn:
                    if rem.incident_id is not None:
                        self._again[rem.incident_id] = now
        detail = {"ready": classifier.ready, "examples": classifier.examples, "note": note}
        log.info("heal: fault classifier swapped in (%d examples): %s", classifier.examples, note)
        await self._audit(self.clock.now(), None, "heal_classifier", "classifier", detail)

    @property
    def paused(self) -> dict[str, Pause]:
        """The services whose healing a person paused, by name."""
        return dict(self.healer.guards.settings.paused)

    async def set_paused(self, service: str, paused: bool, who: str, why: str) -> dict[str, Any]:
        """Pause (or resume) healing on one service: nothing starts there, and a running remediation sends
        no further step, until resumed. Persisted and audited with who and why. ValueError: no who, why
        or service."""
        if not service.strip() or not who.strip() or not why.strip():
            raise ValueError("pausing a service needs the service, who and why")
        async with self._lock:
            now = self.clock.now()
            guards = self.healer.guards
            holds = dict(guards.settings.paused)
            before = holds.get(service)
            if paused:
                holds[service] = Pause(who, why, now)
            else:
                holds.pop(service, None)
            guards.settings = dataclasses.replace(guards.settings, paused=holds)
            value = {"services": {k: v.as_json() for k, v in sorted(holds.items())}}
            record = Decision(
                id=PAUSES_RECORD, at=now, name="heal_paused_services", value=value, reasons=(why,)
            )
            detail = {
                "paused": paused,
                "who": who,
                "why": why,
                "reason": why,
                "previous": None if before is None else before.as_json(),
            }
            entry = AuditEntry(
                at=now,
                service=service,
                actor=f"user:{who}",
                verb="service_pause" if paused else "service_resume",
                subject=service,
                detail=detail,
            )
            await asyncio.to_thread(self.events.put_many, [record, entry])
            return {"service": service, "paused": paused, "who": who, "why": why, "at": now}

    def _restore_pauses(self) -> None:
        record = self.events.get(Decision, PAUSES_RECORD)
        if record is None:
            return
        holds = {
            k: Pause(str(v["who"]), str(v["why"]), float(v["at"]))
            for k, v in record.value.get("services", {}).items()
        }
        for service, hold in holds.items():
            log.warning("heal: %s stays paused (by %s: %s)", service, hold.who, hold.why)
        guards = self.healer.guards
        guards.settings = dataclasses.replace(guards.settings, paused=holds)

    async def roll_back(self, remediation_id: str, who: str, why: str) -> Remediation:
        """Undo the steps a remediation sent (see Executor.roll_back). KeyError: unknown; RollbackRefused
        (an InvalidTransition): not possible now; ValueError: no who or why."""
        async with self._lock:
            outcome = await asyncio.to_thread(self.healer.roll_back, remediation_id, who=who, why=why)
        await self._send_escalations()
        return outcome.remediation

    async def _incident_request(self, incident_id: str) -> HealRequest:
        inc = await asyncio.to_thread(self.events.get, Incident, incident_id)
        if inc is None:
            raise LookupError(f"no incident {incident_id}")
        now = self.clock.now()
        requests = await asyncio.to_thread(lambda: list(self._requests(inc, now, by_hand=True)))
        return requests[0]  # by hand there is always one (from the incident's anomalies at least)

    async def advise(self, incident_id: str) -> tuple[Prediction, list[RunbookOption], str]:
        """The incident's classification, its candidate runbooks, ranked (see Healer.advise), and the
        service they would act on (the ranked root cause the request is filed under). LookupError: no
        such incident."""
        request = await self._incident_request(incident_id)
        async with self._lock:
            prediction, options = await asyncio.to_thread(self.healer.advise, request)
        return prediction, options, request.service

    async def run_runbook(
        self, incident_id: str, runbook: str, who: str, why: str, dry_run: bool = False
    ) -> Outcome:
        """A person runs ``runbook`` on the incident (see Healer.run_by_hand); the remediation starts at
        once when the guards allow it, and a guard's refusal (outcome ``refused``) stores no remediation,
        only the audit. LookupError: no such incident; KeyError: no such runbook; RunbookNotBound: it
        cannot be bound; ValueError: no who or why."""
        request = await self._incident_request(incident_id)
        async with self._lock:
            outcome = await asyncio.to_thread(
                self.healer.run_by_hand, request, runbook, who=who, why=why, dry_run=dry_run
            )
        now = self.clock.now()
        detail = {
            "runbook": runbook,
            "remediation_id": outcome.remediation.id,
            "why": why,
            "dry_run": dry_run,
            "outcome": outcome.event,
            "reason": outcome.reason,
        }
        await self._audit(now, request.service, "heal_run_by_hand", incident_id, {**detail, "who": who})
        if outcome.remediation.state is RemediationState.APPROVED:
            self.kick()
        return outcome

    # -- telling people --

    async def _send_escalations(self) -> None:
        while self._escalations:  # popped one by one: a tick in a worker thread may be appending
            outcome = self._escalations.pop(0)
            rem = outcome.remediation
            note = {
                "remediation_id": rem.id,
                "runbook": rem.runbook,
                "state": rem.state.value,
                "reason": outcome.reason,
            }
            log.warning("heal: remediation %s asks for a person: %s", rem.id, outcome.reason)
            await self._tell(rem.incident_id, rem.service, rem.id, note)
        while self._told:
            incident_id, service, note = self._told.pop(0)
            log.warning("heal: incident %s asks for a person: %s", incident_id, note["reason"])
            await self._tell(incident_id, service, incident_id, {"remediation_id": None, **note})

    async def _tell(
        self, incident_id: str | None, service: str | None, subject: str, note: dict[str, Any]
    ) -> None:
        """Send ``note`` to the notifiers as event ``remediation_escalated`` on the incident's timeline,
        and audit it with what each notifier said."""
        now = self.clock.now()
        note = {"at": now, "event": ESCALATED, **note}
        inc = None
        if incident_id is not None:
            inc = await asyncio.to_thread(self.events.get, Incident, incident_id)
        results: dict[str, Any] = {}
        if inc is not None:
            told = inc.model_copy(update={"timeline": (*inc.timeline, note)})
            for n in self.notifiers:
                try:
                    r = await n.notify(ESCALATED, told)
                    results[n.name] = {"ok": r.ok, "detail": r.detail}
                except Exception as exc:  # a notifier bug must not stop the healer
                    results[n.name] = {"ok": False, "detail": f"notifier raised {exc!r}"}
        await self._audit(now, service, "escalate", subject, {**note, "notified": results})

    async def _audit(
        self, now: float, service: str | None, verb: str, subject: str, detail: dict[str, Any]
    ) -> None:
        entry = AuditEntry(at=now, service=service, actor=ACTOR, verb=verb, subject=subject, detail=detail)
        await asyncio.to_thread(self.events.put, entry)
