"""The heal stage after its first answer: it files an incident under the ranked root cause (within the
incident's reach), asks again when a remediation ended and the incident goes on, and tells a person once
when nothing is left to try, and once of a guard refusing every follow-up. Engine on a fake clock, real
SQLite store; the actuator is the recording double of test_healing_stage (what an actuator does is not
the point here)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from opsmind.clock import SimClock
from opsmind.config import Settings, load_settings
from opsmind.engine import Engine
from opsmind.heal.state import RemediationState
from opsmind.incidents.stage import INCIDENTS_TOPIC, IncidentEvent
from opsmind.notify.stage import RetryPolicy
from opsmind.types import AuditEntry, Incident, Series, SeriesSamples
from tests.engine.test_healing_stage import Collect, RecordingActuator, remediations, wait_for

T0 = 1_700_000_000.0
STEP = 5.0


def _settings(tmp_path: Path, topology: dict[str, list[str]] | None = None, **heal: Any) -> Settings:
    return load_settings(
        storage={"path": str(tmp_path / "heal.db")},
        notify={"log": False},
        detect={"enabled": False},
        predict={"enabled": False},
        incidents={"topology": topology or {}},
        # High-risk runbooks start without approval; the tick loop is driven by the test.
        heal={"enabled": True, "mode": "on", "tick_interval_s": 3600, "approval_above_risk": "high", **heal},
    )


def _chain_metrics(until: float) -> list[SeriesSamples]:
    """20 minutes of gateway -> api -> db: db's latency and CPU jump at T0, api's latency 10 s later,
    the gateway's 15 s later; every service has ready replicas and few errors."""
    rng = np.random.default_rng(4)
    ts = np.arange(T0 - 1200.0, until + 1e-9, STEP)
    out = []
    for service, delay in (("db", 0.0), ("api", 10.0), ("gateway", 15.0)):
        jump = ts >= T0 + delay
        latency = 0.02 + rng.normal(0, 0.001, len(ts)) + np.where(jump, 0.4, 0.0)
        cpu = 0.3 + rng.normal(0, 0.01, len(ts)) + np.where(jump & (service == "db"), 0.5, 0.0)
        series = {
            Series.of("latency_seconds", {"service": service, "quantile": "0.95"}): latency,
            # the tail the unknown restart's precheck reads: slow (>= 0.5 s) once the service is hit
            Series.of("latency_seconds", {"service": service, "quantile": "0.99"}): latency + 0.15,
            Series.of("cpu_utilisation", {"service": service}): cpu,
            Series.of("replicas_ready", {"service": service}): np.full(len(ts), 3.0),
            Series.of("error_ratio", {"service": service}): np.full(len(ts), 0.01),
            Series.of("request_rate", {"service": service}): 50 + rng.normal(0, 1, len(ts)),
        }
        out += [SeriesSamples(s, tuple(ts.tolist()), tuple(v.tolist())) for s, v in series.items()]
    return out


def _incident(iid: str, services: tuple[str, ...], opened: float, last: float | None = None) -> Incident:
    return Incident(
        id=iid,
        at=opened,
        service=services[0],
        title=f"{services[0]} is slow",
        opened_at=opened,
        last_anomaly_at=opened if last is None else last,
        services=services,
        series=tuple(f'latency_seconds{{service="{s}"}}' for s in services),
        priority=80.0,  # users are affected: the untrained classifier's unknown runbook may run
    )


async def _open(engine: Engine, inc: Incident) -> None:
    """Open ``inc`` and wait for the heal stage's decision on it (its ``heal_decide`` audit entry): the
    proposal is written ahead of the guards' verdict, so a remediation record alone may still change."""
    await asyncio.to_thread(engine.store.put, inc)
    await engine.bus.publish(INCIDENTS_TOPIC, IncidentEvent("opened", inc))

    def decided() -> bool:
        entries = engine.store.find(AuditEntry, limit=1000)
        return any(a.verb == "heal_decide" and a.subject == inc.id for a in entries)

    await wait_for(lambda: decided() and any(r.incident_id == inc.id for r in remediations(engine)))


@pytest.mark.parametrize(
    ("topology", "expected"),
    [
        (
            {"gateway": ["api"], "api": ["db"]},
            {"db"},
        ),  # the callee that changed first, though it never alerted
        (None, {"gateway", "api"}),  # no call graph: only the incident's own services are acted on
    ],
)
async def test_the_incident_is_filed_under_its_ranked_root_cause_within_its_reach(
    tmp_path: Path, topology: dict[str, list[str]] | None, expected: set[str]
) -> None:
    clock = SimClock(T0 + 120)
    actuator = RecordingActuator()
    engine = Engine(_settings(tmp_path, topology), clock=clock, remediators={"log": actuator})
    await engine.start()
    try:
        engine.store.append(_chain_metrics(T0 + 120))
        await _open(engine, _incident("inc-1", ("gateway", "api"), T0 + 20))
        (rem,) = remediations(engine)
        assert rem.service in expected and rem.runbook == "unknown_restart"
        await wait_for(lambda: any(a.verb == "heal_decide" for a in engine.store.find(AuditEntry, limit=100)))
        decided = next(a for a in engine.store.find(AuditEntry, limit=100) if a.verb == "heal_decide")
        assert decided.detail["filed_under"] == rem.service
    finally:
        await engine.stop()


async def test_a_failed_remediation_is_followed_up_and_a_person_told_when_nothing_is_left(
    tmp_path: Path,
) -> None:
    clock = SimClock(T0)
    actuator, collect = RecordingActuator(), Collect()
    engine = Engine(
        _settings(tmp_path, settle_s=40),
        clock=clock,
        notifiers=[(collect, RetryPolicy(0, 0.01))],
        remediators={"log": actuator},
    )
    await engine.start()
    try:
        assert engine.healing is not None
        ts = tuple(T0 - 30 + 10 * i for i in range(4))
        failing = [
            SeriesSamples(Series.of("replicas_ready", {"service": "checkout"}), ts, (3.0,) * 4),
            SeriesSamples(Series.of("error_ratio", {"service": "checkout"}), ts, (0.5,) * 4),
        ]
        engine.store.append(failing)
        inc = _incident("inc-1", ("checkout",), T0)
        await _open(engine, inc)
        # The restart is sent; errors stay high, so its verification times out (600 s) and it fails.
        for _ in range(130):
            await clock.advance(5)
            now = clock.now()
            engine.store.append(
                [
                    SeriesSamples(Series.of(s.series.name, dict(s.series.labels)), (now,), (s.values[-1],))
                    for s in failing
                ]
            )
            # The incident goes on: the incident stage keeps its last anomaly fresh.
            await asyncio.to_thread(engine.store.put, inc.model_copy(update={"last_anomaly_at": now}))
            await engine.healing.tick()
            if any("nothing left to try" in str(i.timeline[-1].get("reason")) for _, i in collect.events):
                break
        (rem,) = remediations(engine)
        assert rem.state is RemediationState.FAILED and len(actuator.calls) == 1
        audit = engine.store.find(AuditEntry, limit=1000)
        decided = sorted((a for a in audit if a.verb == "heal_decide"), key=lambda a: a.at)
        assert len(decided) == 2  # at the opening, and again after the failure settled
        assert decided[-1].at >= rem.history[-1].at + 40
        told = [i.timeline[-1] for _, i in collect.events if i.timeline[-1].get("remediation_id") is None]
        assert len(told) == 1 and "nothing left to try" in told[0]["reason"]
        for _ in range(20):  # told once, not on every tick
            await clock.advance(5)
            await engine.healing.tick()
        assert len([i for _, i in collect.events if i.timeline[-1].get("remediation_id") is None]) == 1
    finally:
        await engine.stop()


def _two_fault_metrics(until: float) -> list[SeriesSamples]:
    """gateway -> api -> db and gateway -> cache: db fails (errors, latency, CPU) at T0 and stays broken,
    api and the gateway slow down after it; the cache slows down at T0 too - a second fault."""
    rng = np.random.default_rng(7)
    ts = np.arange(T0 - 1200.0, until + 1e-9, STEP)
    out = []
    for service, delay in (("db", 0.0), ("api", 10.0), ("gateway", 15.0), ("cache", 5.0)):
        jump = ts >= T0 + delay
        latency = 0.02 + rng.normal(0, 0.001, len(ts)) + np.where(jump, 0.4, 0.0)
        cpu = 0.3 + rng.normal(0, 0.01, len(ts)) + np.where(jump & (service == "db"), 0.5, 0.0)
        errors = 0.01 + np.where(jump & (service == "db"), 0.2, 0.0)
        series = {
            Series.of("latency_seconds", {"service": service, "quantile": "0.95"}): latency,
            # the tail the unknown restart's precheck reads: slow (>= 0.5 s) once the service is hit
            Series.of("latency_seconds", {"service": service, "quantile": "0.99"}): latency + 0.15,
            Series.of("cpu_utilisation", {"service": service}): cpu,
            Series.of("replicas_ready", {"service": service}): np.full(len(ts), 3.0),
            Series.of("error_ratio", {"service": service}): errors,
            Series.of("request_rate", {"service": service}): 50 + rng.normal(0, 1, len(ts)),
        }
        out += [SeriesSamples(s, tuple(ts.tolist()), tuple(v.tolist())) for s, v in series.items()]
    return out


async def test_beside_a_remediation_stuck_verifying_the_incidents_other_broken_service_is_acted_on(
    tmp_path: Path,
) -> None:
    """The db's restart does not help (its errors stay): once it has verified for STUCK_S without its
    check holding, the heal stage looks at what else is broken - the cache, which does not call the db -
    long before the restart's verification times out (600 s)."""
    topology = {"gateway": ["api", "cache"], "api": ["db"]}
    clock = SimClock(T0 + 60)
    engine = Engine(
        _settings(tmp_path, topology, settle_s=40), clock=clock, remediators={"log": RecordingActuator()}
    )
    await engine.start()
    try:
        assert engine.healing is not None
        engine.store.append(_two_fault_metrics(T0 + 600))
        inc = _incident("inc-1", ("gateway", "api", "db", "cache"), T0 + 20)
        await _open(engine, inc)
        (first,) = remediations(engine)
        assert first.service == "db"
        for _ in range(48):  # four minutes
            await clock.advance(5)
            await asyncio.to_thread(engine.store.put, inc.model_copy(update={"last_anomaly_at": clock.now()}))
            await engine.healing.tick()
            if len(remediations(engine)) > 1:
                break
        services = {r.service for r in remediations(engine)}
        assert services == {"db", "cache"}
        db = next(r for r in remediations(engine) if r.service == "db")
        assert db.state is RemediationState.VERIFYING  # still verifying: the cache was looked at beside it
    finally:
        await engine.stop()


async def test_while_a_person_decides_on_a_proposal_nothing_else_is_proposed_for_its_incident(
    tmp_path: Path,
) -> None:
    """The restart needs approval: the stage waits for the person (approval_wait_s) instead of proposing
    the next option on another service, and asks again once they rejected it."""
    clock = SimClock(T0 + 120)
    settings = _settings(
        tmp_path, {"gateway": ["api"], "api": ["db"]}, approval_above_risk="low", approval_wait_s=300
    )
    engine = Engine(settings, clock=clock, remediators={"log": RecordingActuator()})
    await engine.start()
    try:
        assert engine.healing is not None
        engine.store.append(_chain_metrics(T0 + 900))
        inc = _incident("inc-1", ("gateway", "api"), T0 + 20)
        await _open(engine, inc)
        (proposal,) = remediations(engine)
        assert proposal.state is RemediationState.PROPOSED

        async def run(seconds: float) -> None:
            for _ in range(int(seconds / STEP)):
                await clock.advance(STEP)
                await asyncio.to_thread(
                    engine.store.put, inc.model_copy(update={"last_anomaly_at": clock.now()})
                )
                await engine.healing.tick()

        await run(200)
        assert len(remediations(engine)) == 1  # the person is still deciding
        await engine.healing.reject(proposal.id, who="alice", why="not now")
        await run(60)
        assert len(remediations(engine)) == 2  # the next option, once they decided
    finally:
        await engine.stop()


async def test_a_guard_refusing_every_option_of_an_incident_pages_a_person_once(tmp_path: Path) -> None:
    """The global rate limit refuses the restart of every service the incident reaches: a person is paged
    for it once, and each follow-up holds its runbook while the limit lasts (nothing more is refused)."""
    clock = SimClock(T0 + 120)
    collect = Collect()
    settings = _settings(
        tmp_path,
        {"gateway": ["api"], "api": ["db"]},
        settle_s=40,
        rate_global={"max_count": 0, "window_s": 3600},
    )
    engine = Engine(
        settings,
        clock=clock,
        notifiers=[(collect, RetryPolicy(0, 0.01))],
        remediators={"log": RecordingActuator()},
    )
    await engine.start()
    try:
        assert engine.healing is not None
        engine.store.append(_chain_metrics(T0 + 900))
        inc = _incident("inc-1", ("gateway", "api"), T0 + 20)
        await _open(engine, inc)
        for _ in range(int(300 / STEP)):
            await clock.advance(STEP)
            await asyncio.to_thread(engine.store.put, inc.model_copy(update={"last_anomaly_at": clock.now()}))
            await engine.healing.tick()
        refused = remediations(engine)
        assert len(refused) == 1 and refused[0].state is RemediationState.ESCALATED
        # Each follow-up holds its runbook while the limit lasts instead of proposing one more to refuse.
        held = [d for d in engine.healing.healer.decisions if d.held is not None]
        assert len(held) >= 2 and all(d.held.startswith("rate_limit_global") for d in held)
        await wait_for(lambda: bool(collect.events))  # each tick sent its pages before it returned
        pages = [i.timeline[-1] for _, i in collect.events if i.timeline[-1].get("remediation_id")]
        assert len(pages) == 1 and "rate_limit_global" in pages[0]["reason"]
    finally:
        await engine.stop()
