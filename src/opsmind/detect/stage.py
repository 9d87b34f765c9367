"""The detect stage: samples in, anomalies out.

Consumes ``samples`` batches from the bus, scores every point with the configured detector, stores
each anomaly in the EventStore and publishes it on ``anomalies``. Anomaly ids are derived from the series
and timestamp, so a redelivered batch produces the same records (idempotent upserts).
"""

from __future__ import annotations

import asyncio
import hashlib

from opsmind.bus.protocols import Bus, Message
from opsmind.bus.stage import Stage
from opsmind.clock import Clock
from opsmind.config import DetectSettings
from opsmind.detect.mad import RollingMadDetector
from opsmind.store.protocols import EventStore
from opsmind.telemetry import Telemetry
from opsmind.types import Anomaly, SeriesSamples

SAMPLES_TOPIC = "samples"
ANOMALIES_TOPIC = "anomalies"


def anomaly_id(series_key: str, ts: float, detector: str) -> str:
    return hashlib.blake2b(f"{detector}|{series_key}|{ts!r}".encode(), digest_size=16).hexdigest()


class DetectStage(Stage):
    name = "detect"
    topic = SAMPLES_TOPIC

    def __init__(
        self, bus: Bus, clock: Clock, telemetry: Telemetry, events: EventStore, settings: DetectSettings
    ) -> None:
        super().__init__(bus, clock, telemetry)
        self.events = events
        self.detector = RollingMadDetector(settings.window, settings.min_points, settings.threshold)
        self._scored = telemetry.counter("opsmind_detect_points_scored_total", "Points scored by detectors")
        self._found = telemetry.counter("opsmind_detect_anomalies_total", "Anomalous points found")
        self._last_ts: dict[str, float] = {}

    async def handle(self, message: Message) -> None:
        batch: list[SeriesSamples] = message.payload
        found: list[Anomaly] = []
        det = self.detector
        for ss in batch:
            key = ss.series.key
            last = self._last_ts.get(key, float("-inf"))
            for ts, value in zip(ss.timestamps, ss.values, strict=True):
                if ts <= last:
                    continue  # duplicates and out-of-order points were already scored or are stale
                last = ts
                score = det.score_one(key, value)
                anomalous = det.is_anomalous(score)
                det.learn_one(key, ts, value, anomalous)
                if score is None:
                    continue
                self._scored.inc()
                if anomalous:
                    found.append(
                        Anomaly(
                            id=anomaly_id(key, ts, det.name),
                            at=self.clock.now(),
                            service=ss.series.service,
                            series=key,
                            ts=ts,
                            value=value,
                            expected=score.expected,
                            score=score.score,
                            probability=score.probability,
                            detector=det.name,
                        )
                    )
            self._last_ts[key] = last
        if not found:
            return
        self._found.inc(len(found))
        for a in found:
            await asyncio.to_thread(self.events.put, a)
            await self.bus.publish(ANOMALIES_TOPIC, a)
