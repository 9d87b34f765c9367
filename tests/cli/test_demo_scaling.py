"""The demo's predictive scaling, on a fake clock: the engine, fed by the demo's simulated fleet, decides
the replicas of a scaled service from its forecast and the simulator's capacity, and the decision reaches
the simulated fleet through its actuator - not a dry run - and comes back as the platform's event."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from opsmind.cli.demo_fleet import SCALED, DemoFleet, SimWorld
from opsmind.clock import SimClock
from opsmind.config import Settings, load_settings
from opsmind.decide.prices import load_prices
from opsmind.engine import Engine
from opsmind.predict.slo import BurnReport
from opsmind.types import AuditEntry, Decision, Event
from tests.doubles import LastValue

AFTERNOON = 1_767_225_600.0 + 14 * 3600  # 2026-01-01 14:00 UTC: the daily load is near its peak


async def advance_until(clock: SimClock, cond: Callable[[], bool], limit_s: float) -> None:
    """Move the clock 5 s at a time (the simulator's step), letting the engine's threads catch up."""
    for _ in range(int(limit_s / 5)):
        if cond():
            return
        await clock.advance(5)
        for _ in range(10):
            await asyncio.sleep(0.005)
    assert cond(), f"not within {limit_s:g} s of the fake clock"


def demo_settings(tmp_path: Path, **predict: object) -> Settings:
    """The engine's settings before the demo configures them: no detection, fast prediction steps
    (``predict``: more of what the user's configuration sets)."""
    return load_settings(
        storage={"path": str(tmp_path / "demo.db")},
        notify={"log": False},
        detect={"enabled": False},
        predict={"interval_s": 60, "min_history": 10, "refit_every": 5, **predict},
    )


async def stop_demo(stop: asyncio.Event, clock: SimClock, task: asyncio.Task[None], engine: Engine) -> None:
    stop.set()
    await clock.advance(5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await engine.stop()


async def test_the_demo_scales_a_simulated_service_through_the_engine(tmp_path: Path) -> None:
    clock = SimClock(AFTERNOON)
    world = SimWorld(clock, history_s=3600)
    base = demo_settings(tmp_path)
    assert not base.scale.services  # scaling is off unless configured: the demo switches it on
    settings = world.configure(base, load_prices())
    assert settings.scale.dry_run is False and set(settings.scale.services) == set(SCALED)
    assert settings.predict.min_history == 10 and settings.predict.replicas_metrics[0] == "replicas_desired"
    topology = settings.incidents.topology  # declared as the fleet's operator knows it
    assert {"auth", "personalization", "event-ingest"} <= set(topology["gateway"])
    assert topology["auth"] == ["redis", "postgres"] and topology["redis"] == []
    engine = Engine(
        settings,
        clock=clock,
        forecaster_factory=LastValue,
        actuators={"simulator": world.scaler(settings.scale)},
    )
    fleet = DemoFleet(engine, clock, fault_after_s=10.0**6, world=world)
    svc = world.sim.fleet.services["personalization"]
    before = svc.desired
    await engine.start()
    stop = asyncio.Event()
    task = asyncio.create_task(fleet.run(stop))
    try:

        def applied() -> list[Decision]:
            return [
                d
                for d in engine.store.find(Decision)
                if d.service == "personalization" and d.value["applied"] is True
            ]

        await advance_until(clock, lambda: bool(applied()), 300)
        decision = applied()[0]
        target = decision.value["replicas"]
        # Afternoon load of ~350/s on 214/s per replica at 70 % and 10 % headroom: 3 replicas, not 4.
        assert decision.value["current"] == before and target != before
        assert SCALED["personalization"][0] <= target <= SCALED["personalization"][1]
        assert decision.value["dry_run"] is False and decision.value["policy"] == "predictive"
        assert decision.value["cost_per_hour"] == target * 0.214  # one m5.xlarge per replica
        assert any(r.startswith("forecast upper bound") for r in decision.reasons)
        assert any(f"scaling personalization from {before} to {target}" in r for r in decision.reasons)
        assert any(r.startswith("cost ") and "m5.xlarge" in r for r in decision.reasons)

        # The simulator carries it out (5 s later) and reports it, as a platform would.
        def reported() -> bool:
            return any(
                e.reason == "ScalingReplicaSet" and e.service == "personalization"
                for e in engine.store.find(Event)
            )

        await advance_until(clock, reported, 60)
        assert svc.desired == target
        # Until the next observation shows it, the engine counts the replicas it set: no action is sent
        # again (the simulator would say "from 3 to 3").
        end = clock.now() + 120
        await advance_until(clock, lambda: clock.now() >= end, 150)
        audit = [a for a in engine.store.find(AuditEntry) if a.verb == "scale"]
        assert {a.service for a in audit} >= {"personalization"}
        assert all(a.actor == "opsmind:scale" for a in audit)
        for a in audit:
            now, then = a.detail["current"], a.detail["replicas"]
            assert now != then and f"from {now} to {then}" in a.detail["action"]["detail"], a.detail
    finally:
        await stop_demo(stop, clock, task, engine)


async def burn_reports_of_a_healthy_fleet(tmp_path: Path, **predict: object) -> dict[str, BurnReport]:
    """The SLO burn reports of every service after an hour of the demo's fleet with no fault, through
    the engine configured as the demo configures it (``predict``: what the user's configuration sets)."""
    clock = SimClock(AFTERNOON)
    world = SimWorld(clock, history_s=3600)
    base = demo_settings(tmp_path, **predict)
    settings = world.configure(base, load_prices())
    engine = Engine(settings, clock=clock, forecaster_factory=LastValue)
    fleet = DemoFleet(engine, clock, fault_after_s=10.0**6, world=world)
    await engine.start()
    stop = asyncio.Event()
    task = asyncio.create_task(fleet.run(stop))
    try:
        views = engine.prediction_views
        await advance_until(clock, lambda: len([v for v in views() if v.burn is not None]) >= 10, 300)
        return {v.service: v.burn for v in views() if v.burn is not None}
    finally:
        await stop_demo(stop, clock, task, engine)


async def test_a_healthy_demo_fleet_meets_the_objectives_the_demo_declares(tmp_path: Path) -> None:
    world = SimWorld(SimClock(AFTERNOON), history_s=60)
    fleet_objective, overrides = world.error_objectives()
    assert fleet_objective == 0.99 and overrides == {"model-training": 0.95}
    reports = await burn_reports_of_a_healthy_fleet(tmp_path)
    assert {"gateway", "model-training", "personalization"} <= set(reports)
    assert not any(r.alerts for r in reports.values()), {s: r.alerts for s, r in reports.items()}


async def test_the_demo_keeps_the_objective_a_configuration_sets(tmp_path: Path) -> None:
    # 99.9 % is tighter than this fleet runs healthy (the gateway fails ~0.6 % of requests, a training
    # job ~2.7 %): said by the user, it is kept, and the burn alerts it implies fire.
    reports = await burn_reports_of_a_healthy_fleet(tmp_path, error_objective=0.999)
    assert reports["model-training"].alerts  # ~27x its budget: the 1-hour page rule (14.4x) fires
    # The gateway burns its 99.9 % budget ~6x over the hour (it would be ~0.6x at 99 %): kept, but that is
    # below the 1-hour rule's 14.4x, and the 6-hour and longer rules wait until their window is covered
    # (they had fired from the hour of data as if it were 6 hours or 3 days of it).
    gateway = reports["gateway"]
    assert 3.0 < gateway.window_burn[3600.0] < 14.4 and not gateway.alerts, gateway
