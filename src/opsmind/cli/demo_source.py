"""The demo's data source: golden signals of a small ML platform with a recurring, visible fault.

A stand-in until the fleet simulator (``opsmind.sim``) exists: it produces what a scrape of such a fleet
would give - request rate, p99 latency, error ratio and CPU per service, with daily seasonality and
noise - and every ``fault_every_s`` it degrades one service for ``fault_for_s`` (latency x5, errors up).
It writes through ``Engine.ingest`` like any other source; the engine is never told about the faults.
"""

from __future__ import annotations

import asyncio
import math
import random

from opsmind.clock import Clock
from opsmind.engine import Engine
from opsmind.types import Series, SeriesSamples

SERVICES = {  # name: (requests/s at peak, p99 latency s, cpu utilisation)
    "gateway": (400.0, 0.08, 0.45),
    "personalization": (250.0, 0.12, 0.55),
    "churn-prevention": (60.0, 0.20, 0.35),
    "comms-optimizer": (90.0, 0.15, 0.40),
    "model-training": (5.0, 2.50, 0.70),
}
FAULT_ORDER = ["personalization", "comms-optimizer", "churn-prevention", "gateway"]


class DemoSource:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        step_s: float = 2.0,
        history_points: int = 150,
        fault_after_s: float = 30.0,
        fault_every_s: float = 600.0,
        fault_for_s: float = 90.0,
        seed: int = 7,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.step_s = step_s
        self.history_points = history_points
        self.fault_every_s = fault_every_s
        self.fault_for_s = fault_for_s
        self.rng = random.Random(seed)
        self.t0 = clock.now()
        self.first_fault = self.t0 + fault_after_s

    def faulty_service(self, ts: float) -> str | None:
        if ts < self.first_fault:
            return None
        k, into = divmod(ts - self.first_fault, self.fault_every_s)
        return FAULT_ORDER[int(k) % len(FAULT_ORDER)] if into < self.fault_for_s else None

    def points(self, ts: float) -> list[SeriesSamples]:
        daily = 0.75 + 0.25 * math.sin(2 * math.pi * ts / 86400)
        broken = self.faulty_service(ts)
        out = []
        for svc, (rps, lat, cpu) in SERVICES.items():
            noise = self.rng.gauss
            rate = rps * daily * (1 + noise(0, 0.03))
            latency = lat * (1 + noise(0, 0.04))
            errors = max(0.0, 0.002 + noise(0, 0.0005))
            util = cpu * daily * (1 + noise(0, 0.03))
            if svc == broken:
                latency *= 5
                errors += 0.08
                util = min(1.0, util * 1.6)
            for metric, value in (
                ("http_requests_per_second", rate),
                ("latency_p99_seconds", latency),
                ("error_ratio", errors),
                ("cpu_utilisation", util),
            ):
                out.append(SeriesSamples(Series.of(metric, {"service": svc, "job": "demo"}), (ts,), (value,)))
        return out

    async def run(self, stop: asyncio.Event) -> None:
        # Backfill recent history so detectors are past their cold start within seconds of the start.
        start = self.t0 - self.history_points * self.step_s
        history: list[SeriesSamples] = []
        for i in range(self.history_points):
            history.extend(self.points(start + i * self.step_s))
        await self.engine.ingest(history, "demo")
        while not stop.is_set():
            await self.engine.ingest(self.points(self.clock.now()), "demo")
            await self.clock.sleep(self.step_s)
