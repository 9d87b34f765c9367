"""The demo's world: the default simulated fleet, live, with a fault every few minutes.

The fleet starts an hour in the past and is simulated quickly up to now, so detectors are warm within
seconds; then it steps at real time (one 5 s step every 5 s) and follows the real time of day, so the
load is today's daily cycle. A director injects a fault every ``fault_every_s`` (rotating through the
kinds) and, ``fault_for_s`` later, applies the remedy an operator would, through the simulator's
actuator - only if the fault's cause is still there (OpsMind's healer may have removed it first). The
engine is fed exactly what a real fleet gives: metrics and platform events.

The engine heals the fleet too (runbook actions through the simulator). Its fault classifier is trained
by :class:`ClassifierTraining` on simulated incidents of the benchmark's training seeds (never its test
seeds), in a separate process while the demo runs, and swapped into the healer when ready (and kept in
the data folder, so the next start with the same folder loads it at once).

The engine also scales a few stateless services of the fleet (:data:`SCALED`) with its predictive policy,
through the simulator's actuator (:class:`~opsmind.act.simulator.SimulatorScaler`), for real: it is a
simulation, so nothing is dry-run. Their capacity per replica is the simulator's own (slots per replica
over the service time) and their cost the instance type each replica runs on.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opsmind.bench.chaos_loop import OBSERVE_S
from opsmind.bench.heal_data import BENCH_SEEDS, KINDS, TRAIN_SEEDS, LabelledCase, make_case
from opsmind.bench.sim_world import SCALED, SimWorld, to_events
from opsmind.clock import Clock
from opsmind.engine import Engine
from opsmind.heal.classify import FaultClassifier
from opsmind.sim.faults import ActiveFault
from opsmind.sim.runner import Step
from opsmind.sim.spec import FaultKind, FaultSpec
from opsmind.types import SeriesSamples

__all__ = ["ROTATION", "SCALED", "ClassifierTraining", "DemoFleet", "SimWorld", "inject_router", "to_events"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Planned:
    spec: FaultSpec
    remedy: str
    remedy_params: dict[str, Any]


def _plan(
    kind: FaultKind,
    service: str | None,
    remedy: str,
    remedy_params: dict[str, Any] | None = None,
    **params: float | str,
) -> Planned:
    spec = FaultSpec(kind=kind, at_s=0, service=service, params=params)
    return Planned(spec, remedy, remedy_params if remedy_params is not None else {"service": service})


ROTATION = [
    _plan("latency_injection", "personalization", "restart", delay_ms=300),
    _plan("bad_deployment", "personalization", "rollback", error_rate=0.3),
    _plan("memory_leak", "comms-optimizer", "rollback", mb_per_min=400),
    _plan("cache_failure", "redis", "restart"),
    _plan("latency_injection", "feature-store", "restart", delay_ms=200),
    _plan("dependency_outage", "postgres", "failover"),
    _plan(
        "config_error",
        "churn-prevention",
        "set_config",
        {"service": "churn-prevention", "key": "feature_flags", "value": "stable"},
    ),
    _plan("cpu_saturation", "personalization", "drain_node", {}),
    _plan("pool_exhaustion", "auth", "restart", leak_per_min=120),
    _plan("model_drift", "personalization", "retrain_model", accuracy_loss_per_hour=1.5),
    _plan(
        "disk_full",
        "postgres",
        "set_config",
        {"service": "postgres", "key": "log_level", "value": "info"},
        gb_per_hour=600,
    ),
    _plan("crash_loop", "notification-sender", "rollback"),
    _plan("traffic_spike", None, "scale", {}, factor=2.5),
    _plan("node_failure", "gateway", "drain_node", {}),
]


class DemoFleet:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        fault_after_s: float = 30.0,
        fault_every_s: float = 300.0,
        fault_for_s: float = 150.0,
        history_s: float = 3600.0,
        seed: int = 7,
        world: SimWorld | None = None,
    ) -> None:
        """``world`` is the simulated fleet to run (default: a new one, ``history_s`` back, ``seed``)."""
        self.engine = engine
        self.clock = clock
        self.fault_after_s = fault_after_s
        self.fault_every_s = fault_every_s
        self.fault_for_s = fault_for_s
        self.world = world if world is not None else SimWorld(clock, history_s, seed)
        self.sim = self.world.sim

    def _step(self) -> Step:
        with self.world.lock:
            return self.sim.step()

    def inject(self, spec: FaultSpec) -> ActiveFault:
        with self.world.lock:
            return self.sim.inject(spec)

    async def _feed(self, steps: list[Step]) -> None:
        batch: list[SeriesSamples] = [ss for st in steps for ss in st.as_batch()]
        events = [e for st in steps for e in to_events(st)]
        await self.engine.ingest(batch, "sim")
        await self.engine.ingest_events(events, "sim")

    async def run(self, stop: asyncio.Event) -> None:
        fleet = self.sim.fleet
        # Catch up from an hour ago to now, as fast as possible, in chunks of ten minutes.
        chunk: list[Step] = []
        while fleet.now + fleet.dt <= self.clock.now():
            chunk.append(self._step())
            if len(chunk) == 120:
                await self._feed(chunk)
                chunk = []
        if chunk:
            await self._feed(chunk)
        live_start = self.clock.now()
        director = asyncio.create_task(self._direct(live_start, stop))
        try:
            while not stop.is_set():
                await self.clock.sleep(max(0.0, fleet.now + fleet.dt - self.clock.now()))
                await self._feed([self._step()])
        finally:
            director.cancel()

    async def _direct(self, live_start: float, stop: asyncio.Event) -> None:
        await self.clock.sleep(self.fault_after_s)
        i = 0
        while not stop.is_set():
            planned = ROTATION[i % len(ROTATION)]
            i += 1
            try:
                fault = self.inject(planned.spec)
                log.warning("demo: injected %s on %s", planned.spec.kind, fault.target)
            except ValueError as exc:
                log.warning("demo: could not inject %s: %s", planned.spec.kind, exc)
                await self.clock.sleep(self.fault_every_s)
                continue
            await self.clock.sleep(self.fault_for_s)
            self._remedy(planned, fault)
            await self.clock.sleep(max(0.0, self.fault_every_s - self.fault_for_s))

    def _remedy(self, planned: Planned, fault: ActiveFault) -> None:
        with self.world.lock:
            present = fault.cause_present()
        if not present:
            log.warning(
                "demo operator: %s on %s is already gone (OpsMind's remediation, or it ended); nothing to do",
                planned.spec.kind,
                fault.target,
            )
            return
        if planned.remedy == "scale":
            # A spike loads every request path, not only the entry: double everything that serves requests.
            for svc in self.sim.fleet.services.values():
                if svc.spec.kind not in ("worker", "database", "cache"):
                    self._act("scale", {"service": svc.name, "replicas": svc.desired * 2})
            return
        params = dict(planned.remedy_params)
        if planned.remedy == "drain_node":
            params = {"node": fault.target}
        self._act(planned.remedy, params)

    def _act(self, action: str, params: dict[str, Any]) -> None:
        result = self.world.apply(action, **params)
        log.warning("demo operator: %s %s -> %s", action, params, result.reason)


def _worker_init(parent: int) -> None:
    """The training worker yields the CPU to the engine and everything else (nice 10), and ends when the
    demo (``parent``) does, however it ended: a pool's worker otherwise waits for work forever once
    orphaned, even one orphaned while it was still starting."""
    try:
        os.nice(10)
    except OSError:  # not permitted here: run at normal priority
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _training_case(kind: str, seed: int) -> LabelledCase | None:
    """One labelled simulated incident, observed as the chaos benchmark observes them (worker process)."""
    return make_case(kind, seed, OBSERVE_S)


class ClassifierTraining:
    """Trains the demo's fault classifier on ``seeds`` simulated incidents of every fault kind (seeds from
    the benchmark's training range, disjoint from its test seeds) in one worker process at low priority,
    so the engine keeps the CPU it needs, then swaps it into the running heal stage. A classifier saved in
    ``cache`` by an earlier run with the same seeds is loaded instead. As an app source: runs until done
    or until the app stops (the cases not started yet are dropped then)."""

    def __init__(self, engine: Engine, seeds: int, cache: Path | None = None) -> None:
        self.engine = engine
        self.seeds = seeds
        self.cache = cache
        self.tasks = [(kind, seed) for seed in TRAIN_SEEDS[:seeds] for kind in KINDS]

    def describe(self) -> str:
        first, last = TRAIN_SEEDS[0], TRAIN_SEEDS[0] + self.seeds - 1
        return (
            f"{len(self.tasks)} simulated incidents ({self.seeds} per fault kind, seeds {first}-{last}; "
            f"the chaos benchmark tests on seeds from {BENCH_SEEDS[0]})"
        )

    async def run(self, stop: asyncio.Event) -> None:
        stage = self.engine.healing
        if stage is None or not self.tasks:
            return
        if self.cache is not None and self.cache.is_file():
            try:
                clf = await asyncio.to_thread(FaultClassifier.load, self.cache)
            except Exception as exc:  # a stale or foreign file: train afresh
                log.warning("demo: cannot load the fault classifier %s (%s); training again", self.cache, exc)
            else:
                await stage.use_classifier(clf, f"loaded from {self.cache}")
                log.warning("demo: fault classifier loaded from %s", self.cache)
                return
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(os.getpid(),),
        )
        try:
            futures = [loop.run_in_executor(pool, _training_case, k, s) for k, s in self.tasks]
            made = [c for c in await asyncio.gather(*futures) if c is not None and c.observation is not None]
        finally:  # cases not started are dropped; the worker ends after the one it runs (or with the demo)
            pool.shutdown(wait=False, cancel_futures=True)
        observations = [c.observation for c in made if c.observation is not None]
        clf = await asyncio.to_thread(FaultClassifier().fit, observations, [c.kind for c in made])
        took = time.monotonic() - started
        note = f"trained on {len(made)} simulated incidents in {took:.0f} s"
        if self.cache is not None:
            await asyncio.to_thread(clf.save, self.cache)
            note += f", saved to {self.cache}"
        await stage.use_classifier(clf, note)
        log.warning("demo: fault classifier %s; the healer uses it from now on", note)


class FaultInject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    service: str | None = None
    node: str | None = None
    zone: str | None = None
    # A day at most: a fault cannot be called off (its remedies can), so 1e300 kept the demo broken.
    duration_s: float | None = Field(None, gt=0, le=86_400)
    params: dict[str, float | str] = Field(default_factory=dict)


def inject_router(demo: DemoFleet) -> APIRouter:
    """``POST /api/v1/demo/faults``: inject a fault by hand (demo mode only)."""
    router = APIRouter(prefix="/api/v1/demo", tags=["demo"])

    @router.post("/faults")
    async def inject(body: FaultInject) -> dict[str, Any]:
        try:
            spec = FaultSpec(at_s=0, **body.model_dump())
            fleet = demo.sim.fleet
            if spec.service is not None and spec.service not in fleet.services:
                raise ValueError(
                    f"unknown service {spec.service!r}; known: {', '.join(sorted(fleet.services))}"
                )
            fault = demo.inject(spec)
        except ValidationError as exc:  # the spec's own checks: their reasons, not pydantic's dump
            reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            raise HTTPException(422, reasons) from None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        except KeyError as exc:  # a kind that targets a service, given none
            raise HTTPException(422, f"{body.kind} needs a service (one of the fleet's)") from exc
        return {"kind": spec.kind, "target": fault.target, "started": demo.sim.fleet.now}

    return router
