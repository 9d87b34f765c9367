"""The heal stage in the running engine, on a fake clock: an opened incident becomes a guarded
remediation, a person's approval lets it run, an escalation reaches the notifiers, a bad runbook stops
the start-up, and a restart in the middle of a step resumes without sending the step twice.

The actuator here is a test double that records the requests it gets: the point is the engine's
bookkeeping (what is sent, when, how often), not what an actuator does with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from opsmind.act.base import ActionResult
from opsmind.clock import SimClock
from opsmind.config import ConfigError, Settings, load_settings
from opsmind.engine import Engine
from opsmind.heal.classify import FaultClassifier, IncidentObservation, Prediction
from opsmind.heal.executor import ActionRequest
from opsmind.heal.followup import PATIENCE_S
from opsmind.heal.state import InvalidTransition, Remediation, RemediationState
from opsmind.incidents.stage import INCIDENTS_TOPIC, IncidentEvent
from opsmind.notify.base import NotifyResult
from opsmind.notify.stage import NotifyStage, RetryPolicy
from opsmind.types import AuditEntry, Incident, IncidentStatus, Series, SeriesSamples

T0 = 1_700_000_000.0


class RecordingActuator:
    """A double: records each request and its dry-run flag, and says it worked."""

    def __init__(self) -> None:
        self.calls: list[tuple[ActionRequest, bool]] = []

    def __call__(self, request: ActionRequest, dry_run: bool) -> ActionResult:
        self.calls.append((request, dry_run))
        return ActionResult(True, False, f"recorded {request.action}", None, dry_run)


class Crash(BaseException):
    """OpsMind dying while the actuator has the request (not an Exception: nothing may catch it)."""


class CrashingActuator(RecordingActuator):
    def __call__(self, request: ActionRequest, dry_run: bool) -> ActionResult:
        self.calls.append((request, dry_run))
        raise Crash


class Collect:
    name = "collect"

    def __init__(self) -> None:
        self.events: list[tuple[str, Incident]] = []

    async def notify(self, event: str, incident: Incident) -> NotifyResult:
        self.events.append((event, incident))
        return NotifyResult(ok=True)


def settings(tmp_path: Path, **heal: Any) -> Settings:
    return load_settings(
        storage={"path": str(tmp_path / "heal.db")},
        notify={"log": False},
        detect={"enabled": False},
        predict={"enabled": False},
        # The tick loop is kept out of the way (an hour): each test drives the stage's ticks itself.
        heal={"enabled": True, "mode": "on", "tick_interval_s": 3600, **heal},
    )


def incident(service: str = "checkout", iid: str = "inc-1") -> Incident:
    return Incident(
        id=iid,
        at=T0,
        service=service,
        title=f"{service} is failing",
        opened_at=T0,
        last_anomaly_at=T0,
        services=(service,),
        series=(f'error_ratio{{service="{service}"}}',),
        priority=80.0,
    )


def telling(tmp_path: Path, clock: SimClock, actuator: RecordingActuator, collect: Collect) -> Engine:
    """An engine healing through ``actuator`` that tells ``collect`` what it escalates."""
    return Engine(
        settings(tmp_path),
        clock=clock,
        notifiers=[(collect, RetryPolicy(0, 0.01))],
        remediators={"log": actuator},
    )


async def slow_metrics(engine: Engine, service: str = "checkout") -> None:
    """Ready replicas and a slow tail (the unknown restart's precheck: it serves badly) and a low error
    ratio (its verification)."""
    ts = tuple(T0 - 30 + 10 * i for i in range(4))
    p99 = Series.of("latency_seconds", {"service": service, "quantile": "0.99"})
    await engine.ingest(
        [
            SeriesSamples(Series.of("replicas_ready", {"service": service}), ts, (3.0,) * 4),
            SeriesSamples(Series.of("error_ratio", {"service": service}), ts, (0.01,) * 4),
            SeriesSamples(p99, ts, (0.8,) * 4),
        ],
        "test",
    )


@asynccontextmanager
async def healing_engine(
    tmp_path: Path,
) -> AsyncIterator[tuple[Engine, SimClock, RecordingActuator, Collect]]:
    """A started engine healing through a recording actuator, telling a collector what it escalates,
    with healthy metrics for checkout; stopped on exit."""
    clock = SimClock(T0)
    actuator, collect = RecordingActuator(), Collect()
    engine = telling(tmp_path, clock, actuator, collect)
    await engine.start()
    try:
        await slow_metrics(engine)
        yield engine, clock, actuator, collect
    finally:
        await engine.stop()


async def wait_for(cond: Callable[[], bool], timeout: float = 10) -> None:
    for _ in range(int(timeout / 0.02)):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


def remediations(engine: Engine) -> list[Remediation]:
    return engine.store.find(Remediation, limit=100)


async def open_incident(engine: Engine, inc: Incident) -> Remediation:
    """Open ``inc`` and return its remediation once the heal stage has decided on it. The proposal is
    written ahead of the guards' verdict, so the remediation alone may still be ``proposed``: the
    stage's ``heal_decide`` audit entry comes after the verdict is stored."""
    await asyncio.to_thread(engine.store.put, inc)
    await engine.bus.publish(INCIDENTS_TOPIC, IncidentEvent("opened", inc))

    def decided() -> bool:
        entries = engine.store.find(AuditEntry, limit=1000)
        return any(a.verb == "heal_decide" and a.subject == inc.id for a in entries)

    await wait_for(lambda: decided() and any(r.incident_id == inc.id for r in remediations(engine)))
    return next(r for r in remediations(engine) if r.incident_id == inc.id)


async def verify_until_done(engine: Engine, clock: SimClock) -> Remediation:
    """Tick every 5 s of the fake clock until the remediation has finished (its verification holds
    for 60 s in the bundled restart runbook)."""
    assert engine.healing is not None
    for _ in range(30):
        await clock.advance(5)
        await engine.healing.tick()
        (rem,) = remediations(engine)
        if rem.finished:
            return rem
    raise AssertionError("the remediation did not finish")


async def test_a_risky_remediation_waits_for_approval_then_runs(tmp_path: Path) -> None:
    async with healing_engine(tmp_path) as (engine, clock, actuator, collect):
        assert engine.healing is not None
        # Untrained classifier: the kind is unknown; users are affected (priority 80), so the unknown
        # runbook (a restart, risk high) is proposed and waits for a person.
        rem = await open_incident(engine, incident())
        assert rem.state is RemediationState.PROPOSED and rem.runbook == "unknown_restart"
        await wait_for(lambda: bool(collect.events))
        event, told = collect.events[0]
        assert event == "remediation_escalated" and told.id == "inc-1"
        assert told.timeline[-1]["remediation_id"] == rem.id
        assert "approval required" in told.timeline[-1]["reason"]
        await engine.healing.tick()
        assert actuator.calls == []  # nothing runs without the approval

        await engine.healing.approve(rem.id, "ana", "restart is safe now")
        await wait_for(lambda: len(actuator.calls) == 1)
        request, dry_run = actuator.calls[0]
        assert (request.action, dict(request.params), dry_run) == ("restart", {"service": "checkout"}, False)
        done = await verify_until_done(engine, clock)
        assert done.state is RemediationState.SUCCEEDED and len(actuator.calls) == 1
        verbs = [a.verb for a in engine.store.find(AuditEntry, limit=1000)]
        for verb in ("heal_decide", "propose", "awaiting_approval", "approve", "send", "succeeded"):
            assert verb in verbs
        decided = next(a for a in engine.store.find(AuditEntry, limit=1000) if a.verb == "heal_decide")
        assert decided.detail["kind"] == "unknown" and decided.detail["impact"] is True


async def test_an_unclear_harmless_incident_is_observed_not_acted_on(tmp_path: Path) -> None:
    clock = SimClock(T0)
    actuator = RecordingActuator()
    engine = Engine(settings(tmp_path, impact_priority=90), clock=clock, remediators={"log": actuator})
    await engine.start()
    try:
        inc = incident()
        await asyncio.to_thread(engine.store.put, inc)
        await engine.bus.publish(INCIDENTS_TOPIC, IncidentEvent("opened", inc))
        await wait_for(lambda: any(a.verb == "heal_decide" for a in engine.store.find(AuditEntry)))
        decided = next(a for a in engine.store.find(AuditEntry) if a.verb == "heal_decide")
        assert decided.detail["waiting"] is True and remediations(engine) == []
    finally:
        await engine.stop()


async def test_an_unclear_incident_that_lasts_is_acted_on_after_the_patience(tmp_path: Path) -> None:
    """Observed while it harms nobody, but not for ever: once it has lasted ``PATIENCE_S`` the healer is
    asked as if users were affected and tries its best guess (here the unknown runbook, which waits for a
    person). A memory leak otherwise grows unattended until the OOM kill."""
    clock = SimClock(T0)
    actuator = RecordingActuator()
    engine = Engine(settings(tmp_path, impact_priority=90), clock=clock, remediators={"log": actuator})
    await engine.start()
    try:
        assert engine.healing is not None
        await slow_metrics(engine)
        inc = incident()
        await asyncio.to_thread(engine.store.put, inc)
        await engine.bus.publish(INCIDENTS_TOPIC, IncidentEvent("opened", inc))
        await wait_for(lambda: any(a.verb == "heal_decide" for a in engine.store.find(AuditEntry)))
        for _ in range(60):  # the incident goes on: an anomaly every step
            await clock.advance(5)
            inc = inc.model_copy(update={"last_anomaly_at": clock.now()})
            await asyncio.to_thread(engine.store.put, inc)
            await engine.healing.tick()
            if remediations(engine):
                break
        (rem,) = remediations(engine)
        assert rem.runbook == "unknown_restart" and rem.state is RemediationState.PROPOSED
        decided = sorted(
            (a for a in engine.store.find(AuditEntry, limit=1000) if a.verb == "heal_decide"),
            key=lambda a: a.at,
        )
        waited = [a.at - T0 for a in decided if a.detail["waiting"]]
        assert waited and max(waited) < PATIENCE_S  # observed while it was young
        assert decided[-1].at - T0 >= PATIENCE_S and decided[-1].detail["impact"] is True
    finally:
        await engine.stop()


async def test_an_opened_event_for_an_incident_resolved_since_asks_nothing(tmp_path: Path) -> None:
    """A backfill opens and resolves incidents in a burst: by the time the heal stage reads "opened",
    the incident may be resolved. Nothing is proposed and nobody is asked to approve anything; an
    incident still open is handled as usual (the same engine, the same untrained classifier)."""
    async with healing_engine(tmp_path) as (engine, _, _, collect):
        gone = incident(iid="inc-gone")
        resolved = gone.model_copy(update={"status": IncidentStatus.RESOLVED, "resolved_at": T0 + 60})
        await asyncio.to_thread(engine.store.put, resolved)
        await engine.bus.publish(INCIDENTS_TOPIC, IncidentEvent("opened", gone))
        still = await open_incident(engine, incident(iid="inc-open"))  # handled after the first one
        assert [r.incident_id for r in remediations(engine)] == ["inc-open"] and still.runbook
        await wait_for(lambda: bool(collect.events))
        assert {i.id for _, i in collect.events} == {"inc-open"}
        decided = [a.subject for a in engine.store.find(AuditEntry, limit=1000) if a.verb == "heal_decide"]
        assert decided == ["inc-open"]


async def test_a_proposal_is_withdrawn_when_its_incident_resolves(tmp_path: Path) -> None:
    """A proposal awaiting a person is withdrawn (aborted, audited) once its incident resolves: nobody
    approves a restart of a service that has recovered. A proposal of another incident stays."""
    async with healing_engine(tmp_path) as (engine, clock, actuator, collect):
        assert engine.healing is not None
        await slow_metrics(engine, "payments")
        rem = await open_incident(engine, incident())
        other = await open_incident(engine, incident("payments", "inc-2"))
        assert rem.state is other.state is RemediationState.PROPOSED
        over = incident().model_copy(update={"status": IncidentStatus.RESOLVED, "resolved_at": T0 + 60})
        await asyncio.to_thread(engine.store.put, over)
        await engine.bus.publish(INCIDENTS_TOPIC, IncidentEvent("resolved", over))

        def state(rid: str) -> RemediationState:
            return next(r.state for r in remediations(engine) if r.id == rid)

        await wait_for(lambda: state(rem.id) is RemediationState.ABORTED)
        assert state(other.id) is RemediationState.PROPOSED
        withdrawn = [a for a in engine.store.find(AuditEntry, limit=1000) if a.verb == "withdraw"]
        assert [a.subject for a in withdrawn] == [rem.id] and "resolved" in withdrawn[0].detail["reason"]
        with pytest.raises(InvalidTransition):
            await engine.healing.approve(rem.id, "ana", "too late")
        assert actuator.calls == []


async def test_an_incident_resolved_while_the_healer_decides_leaves_no_proposal_and_pages_nobody(
    tmp_path: Path,
) -> None:
    """Deciding takes seconds on a busy engine (a backfill): the incident may resolve meanwhile. Its
    proposal is withdrawn at once and the approval request is never sent."""
    async with healing_engine(tmp_path) as (engine, clock, actuator, collect):
        assert engine.healing is not None
        healer = engine.healing.healer
        decide = healer.handle
        over = incident().model_copy(update={"status": IncidentStatus.RESOLVED, "resolved_at": T0 + 5})

        def slow_decision(request: Any) -> Any:
            decision = decide(request)
            engine.store.put(over)  # the incident stage resolved it while the healer was deciding
            return decision

        healer.handle = slow_decision  # type: ignore[method-assign]
        rem = await open_incident(engine, incident())
        await wait_for(lambda: remediations(engine)[0].state is RemediationState.ABORTED)
        await asyncio.sleep(0.3)  # time enough for an escalation to have been sent
        assert collect.events == [] and actuator.calls == []
        verbs = [a.verb for a in engine.store.find(AuditEntry, limit=1000) if a.subject == rem.id]
        assert "awaiting_approval" in verbs and "withdraw" in verbs


class SureClassifier(FaultClassifier):
    """A test double of a trained classifier: every incident is a latency injection, at 0.9."""

    @property
    def ready(self) -> bool:
        return True

    def predict(self, observation: IncidentObservation) -> Prediction:
        return Prediction("latency_injection", 0.9, (("latency_injection", 0.9),), "test double: sure")


async def test_a_trained_classifier_supersedes_the_proposals_made_without_one(tmp_path: Path) -> None:
    """Until a classifier is trained every incident is unknown and its only candidate, a risky restart,
    waits for a person (and the healer does not ask again for approval_wait_s). A trained classifier
    swapped in withdraws those proposals and the incidents are asked again at the next tick."""
    async with healing_engine(tmp_path) as (engine, clock, actuator, collect):
        assert engine.healing is not None
        rem = await open_incident(engine, incident())
        assert rem.state is RemediationState.PROPOSED and rem.runbook == "unknown_restart"
        await engine.healing.use_classifier(SureClassifier(), "test")
        (old,) = remediations(engine)
        assert old.state is RemediationState.ABORTED and "superseded" in old.history[-1].why
        await clock.advance(1)
        await engine.healing.tick()
        decided = sorted(
            (a for a in engine.store.find(AuditEntry, limit=1000) if a.verb == "heal_decide"),
            key=lambda a: a.at,
        )
        assert [a.detail["kind"] for a in decided] == ["unknown", "latency_injection"]
        assert "test double: sure" in decided[-1].detail["explanation"]
        # A trained classifier replacing a trained one leaves proposals alone.
        pending = [r for r in remediations(engine) if r.state is RemediationState.PROPOSED]
        await engine.healing.use_classifier(SureClassifier(), "again")
        assert [r for r in remediations(engine) if r.state is RemediationState.PROPOSED] == pending


async def test_a_restart_mid_step_resumes_without_sending_it_twice(tmp_path: Path) -> None:
    clock = SimClock(T0)
    first = CrashingActuator()
    cfg = settings(tmp_path, approval_above_risk="high")  # no approval needed: it starts on the tick
    engine = Engine(cfg, clock=clock, remediators={"log": first})
    await engine.start()
    assert engine.healing is not None
    await slow_metrics(engine)
    rem = await open_incident(engine, incident())
    assert rem.state is RemediationState.APPROVED
    with pytest.raises(Crash):
        await engine.healing.tick()  # the step's key is committed, then OpsMind dies in the actuator
    assert len(first.calls) == 1
    (left,) = remediations(engine)
    assert left.state is RemediationState.EXECUTING and len(left.sent_keys) == 1
    await engine.stop()

    second = RecordingActuator()
    engine = Engine(cfg, clock=clock, remediators={"log": second})
    await engine.start()  # recover(): the step was maybe sent, so it is verified, never sent again
    try:
        (resumed,) = remediations(engine)
        assert resumed.state is RemediationState.VERIFYING
        done = await verify_until_done(engine, clock)
        assert done.state is RemediationState.SUCCEEDED
        assert second.calls == []
        audit = engine.store.find(AuditEntry, limit=1000)
        assert [a.verb for a in audit if a.subject == rem.id].count("send") == 1
        assert any(a.verb == "recovery_resume_verification" for a in audit)
    finally:
        await engine.stop()


async def test_dry_run_records_what_it_would_do(tmp_path: Path) -> None:
    clock = SimClock(T0)
    actuator = RecordingActuator()
    engine = Engine(settings(tmp_path, mode="dry_run"), clock=clock, remediators={"log": actuator})
    await engine.start()
    try:
        assert engine.healing is not None
        await slow_metrics(engine)
        rem = await open_incident(engine, incident())
        assert rem.state is RemediationState.APPROVED  # dry run: nobody is asked, nothing changes
        await engine.healing.tick()
        (done,) = remediations(engine)
        assert done.state is RemediationState.SUCCEEDED and done.dry_run
        assert [dry for _, dry in actuator.calls] == [True]
    finally:
        await engine.stop()


def test_a_bad_runbook_stops_the_start_with_its_file_named(tmp_path: Path) -> None:
    folder = tmp_path / "runbooks"
    folder.mkdir()
    (folder / "broken.yaml").write_text("name: broken\nfault_kinds: [unknown]\nrisk: extreme\nsteps: []\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        Engine(settings(tmp_path, runbook_dirs=[str(folder)]))


def test_the_simulator_actuator_must_be_given(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="remediators"):
        Engine(settings(tmp_path, actuator="simulator"))


async def test_a_person_can_still_run_a_runbook_once_the_healers_cure_holds(tmp_path: Path) -> None:
    # Once a verified cure explained everything left of the incident, the healer had nothing to ask and
    # the manual override answered "no incident" (the dashboard then said healing was disabled).
    async with healing_engine(tmp_path) as (engine, clock, actuator, collect):
        assert engine.healing is not None
        rem = await open_incident(engine, incident())
        await engine.healing.approve(rem.id, "ana", "restart is safe now")
        await wait_for(lambda: len(actuator.calls) == 1)
        assert (await verify_until_done(engine, clock)).state is RemediationState.SUCCEEDED
        assert not list(engine.healing._requests(incident(), clock.now()))  # the healer asks nothing
        _, options, service = await engine.healing.advise("inc-1")
        assert service == "checkout" and options


async def test_an_incident_whose_runbooks_do_not_apply_yet_is_asked_again_not_given_up(
    tmp_path: Path,
) -> None:
    """The only candidate's precheck does not hold (billing reports no ready replicas yet): nothing is
    proposed, a person is not told "nothing left to try", and the incident is asked again after
    settle_s; once the condition holds, the runbook is proposed."""
    async with healing_engine(tmp_path) as (engine, clock, actuator, collect):
        assert engine.healing is not None
        inc = incident("billing")
        await asyncio.to_thread(engine.store.put, inc)
        await engine.bus.publish(INCIDENTS_TOPIC, IncidentEvent("opened", inc))

        def decisions() -> list[AuditEntry]:
            return [a for a in engine.store.find(AuditEntry, limit=1000) if a.verb == "heal_decide"]

        await wait_for(lambda: len(decisions()) == 1)
        (first,) = decisions()
        assert first.detail["runbook"] is None and first.detail["deferred"] == ["unknown_restart"]
        assert "may apply later" in first.detail["explanation"]
        await asyncio.sleep(0.2)  # time enough for a "nothing left to try" to have been sent
        assert remediations(engine) == [] and collect.events == []

        await slow_metrics(engine, "billing")
        await clock.advance(engine.healing.settings.settle_s + 1)
        await engine.healing.tick()
        await wait_for(lambda: len(decisions()) == 2)
        (rem,) = remediations(engine)
        assert rem.runbook == "unknown_restart" and rem.incident_id == inc.id


def test_every_stage_reads_the_engines_one_call_graph(tmp_path: Path) -> None:
    """A registration's depends_on changes the graph the incidents, notify and heal stages read."""
    cfg = settings(tmp_path).model_copy(update={"detect": load_settings().detect})  # with its stages
    engine = Engine(cfg, notifiers=[(Collect(), RetryPolicy(0, 0.01))])
    try:
        notify = next(s for s in engine.stages if isinstance(s, NotifyStage))
        assert engine.healing is not None and engine.incidents is not None
        assert engine.healing.topology is engine.topology is engine.incidents.topology is notify.topology
        engine.topology.set_registered({"checkout": ["payments"]})
        assert "payments" in engine.healing._scope(incident())
    finally:
        engine.store.close()
