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
from opsmind.bus.memory import MemoryBus
from opsmind.bus.protocols import Message
from opsmind.clock import SimClock
from opsmind.config import load_settings
from opsmind.engine import Engine
from opsmind.engine.scaling import ScaleStage
from opsmind.predict.base import Forecast
from opsmind.predict.capacity import SATURATED_MEMORY_S
from opsmind.predict.stage import PREDICTIONS_TOPIC, PredictStage
from opsmind.store.sqlite import SqliteStore
from opsmind.telemetry import Telemetry
from opsmind.types import AuditEntry, Decision, Incident, IncidentStatus, Series, SeriesSamples
from tests.doubles import LastValue


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
        bounded = [r for r in decision.reasons if r.startswith("forecast upper bound")]
        assert bounded and "95 % bound" in bounded[0], decision.reasons
        assert any(r.startswith("cost ") and "m5.large" in r for r in decision.reasons)
        assert recorder.actions and recorder.actions[0][1] is True  # dry run by default
        await wait_for(lambda: any(a.verb == "scale" for a in engine.store.find(AuditEntry)))
    finally:
        await engine.stop()


async def test_no_scaling_decision_before_the_first_load_prediction(tmp_path: Path) -> None:
    # The fleet's size is not known before the predict stage's first tick: a decision then was recorded
    # at min_replicas (1 here) with its cost, beside 4 ready pods.
    engine, clock, recorder = _live_engine(tmp_path)
    await engine.start()
    try:
        assert engine.scaling is not None
        await engine.ingest(rising_load(clock.now()), "test")
        for _ in range(3):  # scaling ticks, before the predict stage's first (every 60 s)
            await clock.advance(15)
        await asyncio.sleep(0.3)
        assert engine.store.find(Decision) == [] and engine.scaling.decisions == {}
        assert recorder.actions == []
        await clock.advance(15)  # the predict tick (its work runs in a thread) ...
        await wait_for(lambda: engine.scaling is not None and "api" in engine.scaling.latest)
        await clock.advance(15)  # ... then a scaling tick with its prediction
        await wait_for(lambda: bool(engine.store.find(Decision)))
        first = min(engine.store.find(Decision), key=lambda d: d.at)
        assert first.value["current"] == 4 and first.reasons[0] == "current 4 replicas (observed)"
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


# -- a saturated fleet bounds the capacity per pod --------------------------------------------------------

MINUTE0 = 1_700_000_040.0  # a whole minute
# The service's CPU as a scrape labels it (the simulator's exporter adds its job too).
CPU = Series.of("cpu_utilisation", {"service": "api", "job": "opsmind-sim"})
LOAD = Series.of("request_rate", {"service": "api"})
PER_POD = 10.0  # what one pod of the service below serves at most, req/s
OFFERED = 70.0  # req/s offered: 7 pods would serve it, 10 at the 70 % target


async def run_saturating_service(
    stage: ScaleStage,
    predict: PredictStage,
    store: SqliteStore,
    clock: SimClock,
    minutes: int,
    count_desired: bool = False,
) -> list[tuple[int, float]]:
    """Drive ``stage`` and the real ``predict`` stage against a service whose pods serve ``PER_POD`` each,
    offered ``OFFERED``, from 4 pods. What the pods cannot serve is not served, so the request rate
    observed is the served one (a counter of completed requests) and the CPU is the share of the pods'
    capacity in use; a pod asked for is ready a minute later. There is no latency series, so no fit: the
    predict stage publishes the configured capacity, bounded by what the saturated fleet served. Its
    replicas are the ready ones (``count_desired``: the ones asked for, a ``replicas_desired`` series).
    Every whole minute it predicts and the scaler takes the prediction; the scaler decides every 15 s.
    Returns each minute's ready pods and CPU."""
    started = [clock.now() - 3600.0] * 4  # when each pod was asked for
    seen: list[tuple[int, float]] = []

    class Fleet:
        def apply(self, action: ScaleAction, dry_run: bool = True) -> ActionResult:
            del started[action.replicas :]
            started.extend([clock.now()] * (action.replicas - len(started)))
            return ActionResult(True, False, f"scaled to {action.replicas}", None, dry_run)

        def revert(self, token: str, dry_run: bool = True) -> ActionResult:
            return ActionResult(False, False, "no", None, dry_run)

    fleet = Fleet()
    stage.actuator_for = lambda service, cfg: fleet
    replicas = Series.of("replicas_desired" if count_desired else "replicas_ready", {"service": "api"})
    start = clock.now()
    for k in range(minutes * 4):
        await clock.advance(start + 15 * k - clock.now())
        now = clock.now()
        ready = sum(1 for t in started if now - t >= 60)
        if k % 4 == 0 and k:
            predictions, _ = predict.step(now)
            for p in predictions:
                await stage.handle(Message(k, PREDICTIONS_TOPIC, p, 1))
        cpu = min(1.0, OFFERED / (ready * PER_POD))
        count = len(started) if count_desired else ready
        store.append(
            [
                SeriesSamples(CPU, (now,), (cpu,)),
                SeriesSamples(LOAD, (now,), (min(OFFERED, ready * PER_POD),)),
                SeriesSamples(replicas, (now,), (float(count),)),
            ]
        )
        if k % 4 == 3:
            seen.append((ready, cpu))
        await stage._decide("api", now)
    return seen


def saturation_stages(
    tmp_path: Path, configured: float | None
) -> tuple[ScaleStage, PredictStage, SqliteStore, SimClock]:
    clock, telemetry = SimClock(MINUTE0), Telemetry()
    store = SqliteStore(str(tmp_path / "s.db"))
    svc: dict[str, Any] = {"max_replicas": 40, "startup_s": 60, "actuator": "log", "dry_run": False}
    if configured is not None:
        svc["capacity_per_replica"] = configured
    cfg = load_settings(
        predict={"min_history": 2, "outlook_interval_s": 10**9},
        scale={"interval_s": 15, "services": {"api": svc}},
    )
    bus = MemoryBus(telemetry=telemetry, clock=clock)
    stage = ScaleStage(bus, clock, telemetry, store, store, cfg.scale, lambda service, c: Recorder())
    # As the engine builds it: the scaled services' configured capacities are the predict stage's.
    known = {} if configured is None else {"api": configured}
    predict = PredictStage(bus, clock, telemetry, store, store, cfg.predict, LastValue, known_capacity=known)
    return stage, predict, store, clock


@pytest.mark.parametrize("configured", [20.0, 50.0, None])
async def test_a_saturated_fleet_is_scaled_to_its_load_whatever_capacity_was_configured(
    tmp_path: Path, configured: float | None
) -> None:
    # Configured 2x and 5x what a pod serves (a fit refuses data this saturated, so the predict stage
    # passes the configured figure on), or nothing at all. Saturated pods serve only what they can, so
    # the observed load per replica is their capacity, and the load-based terms sized with a capacity
    # too high asked for no more pods: before the bound, 2x held the 4 pods, 5x shrank them to 2 and no
    # capacity kept 4, with every pod at 100 % CPU for the whole run.
    stage, predict, store, clock = saturation_stages(tmp_path, configured)
    with store:
        seen = await run_saturating_service(stage, predict, store, clock, minutes=40)
    ready = [r for r, _ in seen]
    assert seen[0] == (4, 1.0)
    # Within ten minutes the fleet is out of saturation, and it stays there: the bound is kept, so the
    # fleet does not shrink back to what the configured capacity says once the scale-down window passes.
    assert all(r >= 10 and cpu <= 0.7 for r, cpu in seen[10:]), ready
    assert max(ready) <= 14, ready  # 10 pods at 70 %, plus the forecast's 10 % and headroom, no more
    last = stage.decisions["api"]["reasons"]
    assert any("a saturated fleet served no more" in r for r in last), last


async def test_pods_still_starting_do_not_lower_the_saturated_bound(tmp_path: Path) -> None:
    # Replicas counted as asked for (the demo reads replicas_desired first) include pods not serving yet:
    # a saturated minute divided among them would put the bound below what a pod serves and keep the
    # fleet too large for hours. Steps the replica count changed within SETTLE_S of are not used.
    stage, predict, store, clock = saturation_stages(tmp_path, 20.0)
    with store:
        seen = await run_saturating_service(stage, predict, store, clock, minutes=40, count_desired=True)
    ready = [r for r, _ in seen]
    # At most 15: the served load's jumps while the fleet leaves saturation are misses of the forecast,
    # and the scaler's bound keeps its recent misses for half an hour (predict/outlook.py trusted_upper).
    assert all(r >= 10 for r in ready[10:]) and max(ready) <= 15, ready
    assert max(ready[-10:]) <= 14, ready
    assert stage.latest["api"].capacity is not None
    assert stage.latest["api"].capacity.saturation_per_replica == pytest.approx(PER_POD)


async def test_the_saturated_bound_is_forgotten_after_its_memory(tmp_path: Path) -> None:
    stage, predict, store, clock = saturation_stages(tmp_path, 20.0)
    with store:
        await run_saturating_service(stage, predict, store, clock, minutes=15)
        cfg = stage.config("api")
        per_pod, why = stage._capacity_per_pod(cfg, stage.latest["api"])
        assert per_pod == pytest.approx(PER_POD) and "saturated fleet" in why
        # Not seen saturated again for longer than the memory: the configured capacity is back (so a
        # wrong bound, from a CPU-hungry neighbour say, over-provisions for a bounded time only).
        later = clock.now() + SATURATED_MEMORY_S + 60
        quiet = [later - 120 + 15 * i for i in range(8)]
        store.append(
            [
                SeriesSamples(CPU, tuple(quiet), (0.7,) * 8),
                SeriesSamples(LOAD, tuple(quiet), (OFFERED,) * 8),
                SeriesSamples(Series.of("replicas_ready", {"service": "api"}), tuple(quiet), (10.0,) * 8),
            ]
        )
        await clock.advance(later - clock.now())
        (pred,), _ = predict.step(later)
        per_pod, why = stage._capacity_per_pod(cfg, pred)
        assert per_pod == 20.0 and "saturated" not in why, why


async def test_the_hpa_policy_reads_the_service_cpu_whatever_other_labels_it_carries(tmp_path: Path) -> None:
    # The HPA looked up the bare {service="api"} series only: scraped with a job label (as the
    # simulator's exporter sends it), the CPU went unseen and a saturated fleet kept its pods.
    stage, _, store, clock = saturation_stages(tmp_path, None)
    stage.settings.services["api"] = stage.config("api").model_copy(update={"policy": "hpa"})
    with store:
        now = clock.now()
        # One pod's series, idle, beside the service's: it is not the service's CPU.
        pod = Series.of("cpu_utilisation", {"service": "api", "job": "opsmind-sim", "pod": "api-1"})
        store.append([SeriesSamples(CPU, (now - 10,), (1.0,)), SeriesSamples(pod, (now - 10,), (0.1,))])
        decided = await stage._decide("api", now)
    # Nothing observed yet, so min_replicas (1) is current: ceil(1 x 1.0 / 0.7) = 2.
    assert decided["current"] == 1 and decided["replicas"] == 2, decided["reasons"]
    assert "cpu_utilisation 1" in decided["reasons"], decided["reasons"]
