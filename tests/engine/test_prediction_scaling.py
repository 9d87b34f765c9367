"""Prediction and scaling in the running engine, on a fake clock: a forecast breach becomes a prediction
incident with its lead time, and the scaling controller decides ahead of it, with reasons and cost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from opsmind.act.base import ActionResult, ScaleAction
from opsmind.clock import SimClock
from opsmind.config import load_settings
from opsmind.engine import Engine
from opsmind.predict.base import Forecast
from opsmind.types import AuditEntry, Decision, Incident, IncidentStatus, Series, SeriesSamples


class TrendForecaster:
    """A test double: the last value plus the recent slope, with a +-5 % interval."""

    def fit(self, y: np.ndarray) -> None:
        self.y = list(map(float, y))

    def update(self, y_new: np.ndarray) -> None:
        self.y.extend(map(float, y_new))

    def predict(self, h: int, levels: tuple[int, ...] = (80, 95)) -> Forecast:
        tail = np.asarray(self.y[-10:])
        slope = float(np.polyfit(np.arange(tail.size), tail, 1)[0]) if tail.size > 1 else 0.0
        mean = tail[-1] + slope * np.arange(1, h + 1)
        return Forecast(
            mean, dict.fromkeys(levels, mean * 0.95), dict.fromkeys(levels, mean * 1.05), "trend (test)"
        )


class Recorder:
    def __init__(self) -> None:
        self.actions: list[tuple[ScaleAction, bool]] = []

    def apply(self, action: ScaleAction, dry_run: bool = True) -> ActionResult:
        self.actions.append((action, dry_run))
        return ActionResult(True, False, f"recorded {action.replicas}", None, dry_run)

    def revert(self, token: str, dry_run: bool = True) -> ActionResult:
        return ActionResult(False, False, "no", None, dry_run)


def settings(tmp_path: Path, **scale: Any) -> Any:
    return load_settings(
        storage={"path": str(tmp_path / "p.db")},
        notify={"log": False},
        detect={"enabled": True, "multivariate": False},
        predict={"interval_s": 60, "min_history": 10, "refit_every": 5},
        scale={
            "interval_s": 15,
            "services": {
                "api": {
                    "capacity_per_replica": 10,
                    "max_replicas": 12,
                    "startup_s": 60,
                    "actuator": "log",
                    **scale,
                }
            },
        },
    )


def rising_load(now: float) -> list[SeriesSamples]:
    """40 minutes of load rising 0.5/s per minute to 38/s, on 4 replicas (a ceiling of 40/s)."""
    ts = tuple(now - 60 * (40 - i) for i in range(40))
    load = tuple(18.5 + 0.5 * i for i in range(40))
    return [
        SeriesSamples(Series.of("request_rate", {"service": "api"}), ts, load),
        SeriesSamples(Series.of("replicas_ready", {"service": "api"}), ts, (4.0,) * 40),
    ]


async def wait_for(cond: Callable[[], bool], clock: SimClock | None = None, timeout: float = 10) -> None:
    for _ in range(int(timeout / 0.02)):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def test_a_forecast_breach_becomes_a_prediction_incident_and_a_scale_up(tmp_path: Path) -> None:
    clock = SimClock(1_700_000_000.0)
    recorder = Recorder()
    engine = Engine(
        settings(tmp_path), clock=clock, forecaster_factory=TrendForecaster, actuators={"log": recorder}
    )
    await engine.start()
    try:
        await engine.ingest(rising_load(clock.now()), "test")
        await clock.advance(60)  # one predict tick: the risk is seen, and must hold for a minute (for:)
        await asyncio.sleep(0.3)
        assert engine.store.find(Incident) == []
        await clock.advance(60)  # the next tick: it held, so each kind warns
        await wait_for(lambda: len(engine.store.find(Incident)) == 2)
        found = engine.store.find(Incident)
        # A configured capacity is both the SLO capacity and saturation: one incident for each warning.
        assert {i.type for i in found} == {"prediction"} and {i.service for i in found} == {"api"}
        (inc,) = [i for i in found if i.labels["warning"] == "saturation"]
        lead = float(inc.labels["lead_s"])
        assert 60 <= lead <= 900 and float(inc.labels["expected_at"]) == clock.now() + lead
        assert "load forecast" in inc.timeline[0]["evidence"]

        view = engine.forecast_view("api")
        assert view.forecast is not None and view.forecast.model == "trend (test)"
        assert view.capacity is not None and view.capacity.ok and "configured" in view.notes["capacity"]

        await clock.advance(15)  # one scaling tick, after the prediction arrived

        def informed() -> list[Decision]:
            return [d for d in engine.store.find(Decision) if d.value["current"] == 4]

        await wait_for(lambda: bool(informed()))
        decision = informed()[0]
        assert decision.value["replicas"] > 4  # ahead of the breach
        assert decision.value["dry_run"] is True and decision.value["cost_per_hour"] > 0
        assert any("forecast upper bound" in r for r in decision.reasons)
        assert any(r.startswith("cost ") and "m5.large" in r for r in decision.reasons)
        assert recorder.actions and recorder.actions[0][1] is True  # dry run by default
        await wait_for(lambda: any(a.verb == "scale" for a in engine.store.find(AuditEntry)))
    finally:
        await engine.stop()


def _live_engine(tmp_path: Path) -> tuple[Engine, SimClock, Recorder]:
    """An engine scaling for real (not a dry run) through a recording actuator, on a simulated clock."""
    clock, recorder = SimClock(1_700_000_000.0), Recorder()
    engine = Engine(
        settings(tmp_path, dry_run=False),
        clock=clock,
        forecaster_factory=TrendForecaster,
        actuators={"log": recorder},
    )
    return engine, clock, recorder


async def test_an_override_pins_the_replicas_until_released(tmp_path: Path) -> None:
    engine, clock, recorder = _live_engine(tmp_path)
    await engine.start()
    try:
        assert engine.scaling is not None
        pinned = await engine.scaling.override("api", 3, "ana", "load test")
        assert pinned["replicas"] == 3 and pinned["policy"] == "override"
        assert recorder.actions[-1][0].replicas == 3 and recorder.actions[-1][1] is False
        await clock.advance(15)
        await wait_for(lambda: len(engine.store.find(Decision)) >= 2)
        assert engine.scaling.decisions["api"]["replicas"] == 3
        paused = await engine.scaling.override("api", None, "ana", "freeze")
        assert paused["action"] is None and "automation paused" in paused["reasons"][1]
        released = await engine.scaling.release("api", "ana")
        assert released["override"] is None and released["policy"] == "predictive"
        verbs = [a.verb for a in engine.store.find(AuditEntry) if a.actor == "user:ana"]
        assert sorted(verbs) == ["scale_override", "scale_override", "scale_release"]
    finally:
        await engine.stop()


async def test_an_override_bounds_automation_which_keeps_deciding_within_them(tmp_path: Path) -> None:
    engine, _, _ = _live_engine(tmp_path)
    await engine.start()
    try:
        assert engine.scaling is not None
        cfg = engine.scaling.config("api")
        floor = cfg.min_replicas + 2
        bounded = await engine.scaling.override("api", None, "ana", "before the sale", min_replicas=floor)
        # automation still decides (its policy, not "override"), but not below the operator's floor
        assert bounded["policy"] == cfg.policy and bounded["replicas"] >= floor
        assert bounded["override"]["kind"] == "bounds" and bounded["override"]["min_replicas"] == floor
        assert any("bounded to" in r for r in bounded["reasons"])
        with pytest.raises(ValueError, match="not both"):
            await engine.scaling.override("api", 3, "ana", "x", max_replicas=4)
        with pytest.raises(ValueError, match="above max_replicas"):
            await engine.scaling.override("api", None, "ana", "x", min_replicas=floor, max_replicas=floor - 1)
        with pytest.raises(ValueError, match="outside"):
            await engine.scaling.override("api", None, "ana", "x", max_replicas=cfg.max_replicas + 1)
        assert engine.scaling.overrides["api"].min_replicas == floor  # a refused change keeps the old one
    finally:
        await engine.stop()


def low_load(now: float) -> list[SeriesSamples]:
    """40 minutes of a flat 5/s on 4 replicas: one replica would do."""
    ts = tuple(now - 60 * (40 - i) for i in range(40))
    return [
        SeriesSamples(Series.of("request_rate", {"service": "api"}), ts, (5.0,) * 40),
        SeriesSamples(Series.of("replicas_ready", {"service": "api"}), ts, (4.0,) * 40),
    ]


async def test_no_scale_down_while_an_incident_involves_the_service(tmp_path: Path) -> None:
    clock, recorder = SimClock(1_700_000_000.0), Recorder()
    engine = Engine(
        settings(tmp_path, dry_run=False, scale_down_window_s=1),
        clock=clock,
        forecaster_factory=TrendForecaster,
        actuators={"log": recorder},
    )
    await engine.start()
    try:
        scaling = engine.scaling
        assert scaling is not None
        # An incident filed under a caller that also involves api (a slow api makes its caller slow).
        now = clock.now()
        incident = Incident(
            at=now,
            opened_at=now,
            last_anomaly_at=now,
            service="gateway",
            services=("gateway", "api"),
            title="Anomalous behaviour",
        )
        engine.store.put(incident)
        await engine.ingest(low_load(clock.now()), "test")
        await clock.advance(60)  # a prediction with the observed 4 replicas
        await wait_for(lambda: "api" in scaling.latest)
        held = await scaling._decide("api", clock.now())
        assert held["replicas"] == 4 and held["action"] is None
        assert any(r.startswith(f"scale-down held: incident {incident.id[:8]}") for r in held["reasons"])
        # An operator's pin is obeyed all the same.
        pinned = await scaling.override("api", 2, "ana", "known idle")
        assert pinned["replicas"] == 2 and recorder.actions[-1][0].replicas == 2
        await scaling.release("api", "ana")
        engine.store.put(incident.model_copy(update={"status": IncidentStatus.RESOLVED}))
        free = await scaling._decide("api", clock.now() + 30)
        assert free["replicas"] < free["current"]
        assert not any(r.startswith("scale-down held") for r in free["reasons"])
    finally:
        await engine.stop()
