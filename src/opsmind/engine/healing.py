"""The heal stage: incidents in, guarded remediations out, and a person's say over them.

It consumes ``incidents`` (the incident stage's :class:`~opsmind.incidents.stage.IncidentEvent`) under its
own consumer group, as the notify stage does. When an incident opens it observes it from the stores
(:mod:`opsmind.engine.heal_reading`: the incident's anomalies as signals in onset order, platform
events of the last 15 minutes, the service's latest levels and trends, its template fields) and asks the
:class:`~opsmind.heal.healer.Healer` for a remediation, with ``impact`` when users are affected
(:func:`~opsmind.engine.heal_reading.users_affected`). An incident the healer cannot classify and that
harms nobody is observed again every ``heal.observe_again_s`` while it lasts. A resolved incident tells
the healer its last verified remediation worked. Every ``heal.tick_interval_s`` of the engine clock the
healer drives its remediations (steps, verification, rollback). At start, half-done remediations left by
a restart are made safe (:meth:`Healer.recover`) before anything else runs.

People act through :meth:`HealStage.approve`, :meth:`HealStage.reject` and :meth:`HealStage.set_mode`
(the API's ``/remediations`` and ``/automation``), pause one service (:meth:`HealStage.set_paused`), roll
a remediation back (:meth:`HealStage.roll_back`) and run a runbook of their choice on an incident
(:meth:`HealStage.advise`, :meth:`HealStage.run_runbook`). The mode and the pauses are persisted: an
operator who switched automation off, or paused a service, in an emergency does not get it back on by a
restart.

Every decision is audited (the healer's choice with its explanation here; proposals, guard verdicts,
steps, approvals and recoveries by the executor). An outcome that asks for a person is sent to the
engine's notifiers as event ``remediation_escalated`` with the incident, its timeline carrying the
remediation and the reason; notifier retries and muting are the notify stage's business and are not
applied to these (one attempt each, audited).

The healer is synchronous and not thread-safe: every call to it runs in a worker thread under one lock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opsmind.bus.dedup import RecentKeys
from opsmind.bus.protocols import Bus, Message
from opsmind.bus.stage import Stage
from opsmind.clock import Clock
from opsmind.config import ConfigError, HealSettings
from opsmind.engine.heal_reading import StoreView, fields, observe, users_affected
from opsmind.heal.classify import FaultClassifier, Prediction
from opsmind.heal.executor import Actuate, Outcome
from opsmind.heal.guards import AutomationMode, Guards, GuardSettings, Pause, RateLimit
from opsmind.heal.healer import RISK_LEVEL, HealDecision, Healer, HealRequest, RunbookOption
from opsmind.heal.runbook import Runbook, RunbookError, bundled_dir, load_library
from opsmind.heal.state import Remediation, RemediationState
from opsmind.incidents.stage import INCIDENTS_TOPIC, IncidentEvent
from opsmind.notify.base import Notifier
from opsmind.store.protocols import EventStore, SampleStore
from opsmind.telemetry import Telemetry
from opsmind.types import Anomaly, AuditEntry, Decision, Incident

log = logging.getLogger(__name__)
ACTOR = "opsmind:heal"
MODE_RECORD = "heal:automation_mode"  # one Decision record holds the mode set by a person
PAUSES_RECORD = "heal:paused_services"  # one Decision record holds every service's pause
ESCALATED = "remediation_escalated"


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
    ) -> None:
        super().__init__(bus, clock, telemetry)
        self.events = events
        self.settings = settings
        self.notifiers = list(notifiers)
        self.group_window_s = group_window_s
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
        )
        self._lock = asyncio.Lock()
        self._asked = RecentKeys()  # (incident, reopened): a redelivered opening is not asked twice
        self._again: dict[str, float] = {}  # incident -> when to observe it again (unclear, harmless)
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
            await self._send_escalations()

    async def _ask(self, inc: Incident) -> HealDecision:
        now = self.clock.now()
        request = await asyncio.to_thread(self._request, inc, now)
        decision = await asyncio.to_thread(self.healer.handle, request)
        if decision.waiting:
            self._again[inc.id] = now + self.settings.observe_again_s
        else:
            self._again.pop(inc.id, None)
        rem = decision.outcome.remediation if decision.outcome is not None else None
        result = "waiting" if decision.waiting else (rem.state.value if rem is not None else "none")
        self._decisions.labels(result).inc()
        detail = {
            "explanation": decision.explanation,
            "kind": decision.kind,
            "confidence": decision.prediction.confidence,
            "runbook": decision.runbook,
            "remediation_id": rem.id if rem is not None else None,
            "waiting": decision.waiting,
            "impact": request.impact,
            "skipped": list(decision.skipped),
        }
        await self._audit(now, inc.service, "heal_decide", inc.id, detail)
        return decision

    def _request(self, inc: Incident, now: float) -> HealRequest:
        since = inc.opened_at - self.group_window_s
        anomalies = [
            a
            for s in inc.services or ((inc.service,) if inc.service else ())
            for a in self.events.find(Anomaly, service=s, since=since, until=now, limit=10_000)
        ]
        impact = users_affected(inc, self.settings.impact_priority)
        return HealRequest(
            inc.id,
            inc.service or "",
            observe(self.view, inc, anomalies, now),
            fields(self.view, inc, now),
            impact,
        )

    # -- the loop --

    async def tick(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self.healer.tick)
            now = self.clock.now()
            for iid in [i for i, at in self._again.items() if at <= now]:
                inc = await asyncio.to_thread(self.events.get, Incident, iid)
                if inc is None or not inc.status.active:
                    self._again.pop(iid, None)
                elif not self.healer.busy(inc.service):
                    await self._ask(inc)
        await self._send_escalations()

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
            self.healer.classifier = classifier
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
        return await asyncio.to_thread(self._request, inc, self.clock.now())

    async def advise(self, incident_id: str) -> tuple[Prediction, list[RunbookOption]]:
        """The incident's classification and its candidate runbooks, ranked (see Healer.advise).
        LookupError: no such incident."""
        request = await self._incident_request(incident_id)
        async with self._lock:
            return await asyncio.to_thread(self.healer.advise, request)

    async def run_runbook(
        self, incident_id: str, runbook: str, who: str, why: str, dry_run: bool = False
    ) -> Outcome:
        """A person runs ``runbook`` on the incident (see Healer.run_by_hand); the remediation starts at
        once when the guards allow it. LookupError: no such incident; KeyError: no such runbook;
        RunbookNotBound: it cannot be bound; ValueError: no who or why."""
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
            now = self.clock.now()
            inc = None
            if rem.incident_id is not None:
                inc = await asyncio.to_thread(self.events.get, Incident, rem.incident_id)
            note = {
                "at": now,
                "event": ESCALATED,
                "remediation_id": rem.id,
                "runbook": rem.runbook,
                "state": rem.state.value,
                "reason": outcome.reason,
            }
            results: dict[str, Any] = {}
            if inc is not None:
                told = inc.model_copy(update={"timeline": (*inc.timeline, note)})
                for n in self.notifiers:
                    try:
                        r = await n.notify(ESCALATED, told)
                        results[n.name] = {"ok": r.ok, "detail": r.detail}
                    except Exception as exc:  # a notifier bug must not stop the healer
                        results[n.name] = {"ok": False, "detail": f"notifier raised {exc!r}"}
            log.warning("heal: remediation %s asks for a person: %s", rem.id, outcome.reason)
            await self._audit(now, rem.service, "escalate", rem.id, {**note, "notified": results})

    async def _audit(
        self, now: float, service: str | None, verb: str, subject: str, detail: dict[str, Any]
    ) -> None:
        entry = AuditEntry(at=now, service=service, actor=ACTOR, verb=verb, subject=subject, detail=detail)
        await asyncio.to_thread(self.events.put, entry)
