"""The detect stage: samples in, anomalies out.

Consumes ``samples`` batches from the bus, scores every point with the detection ensemble
(:mod:`opsmind.detect.ensemble`, vectorised over all series of a round), stores each anomaly in the
EventStore and publishes it on ``anomalies``. Points not newer than a series' last scored point
(duplicates, out of order, redeliveries) are skipped and counted. Anomaly ids are derived from the series
and timestamp, so a redelivered batch produces the same records (idempotent upserts).
"""

from __future__ import annotations

import asyncio
import hashlib
import math

import numpy as np

from opsmind.bus.protocols import Bus, Message
from opsmind.bus.stage import Stage
from opsmind.clock import Clock
from opsmind.config import DetectSettings
from opsmind.detect.ensemble import Ensemble
from opsmind.store.protocols import EventStore
from opsmind.telemetry import Telemetry
from opsmind.types import Anomaly, Series, SeriesSamples

SAMPLES_TOPIC = "samples"
ANOMALIES_TOPIC = "anomalies"
DETECTOR = "ensemble"


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
        self.ensemble = Ensemble(threshold=settings.threshold, relearn_after=settings.relearn_after)
        self._scored = telemetry.counter("opsmind_detect_points_scored_total", "Points scored by detectors")
        self._found = telemetry.counter("opsmind_detect_anomalies_total", "Anomalous points found")
        self._skipped = telemetry.counter(
            "opsmind_detect_points_skipped_total", "Points not scored: duplicate, out of order or not finite"
        )
        self._last_ts: dict[str, float] = {}

    async def handle(self, message: Message) -> None:
        batch: list[SeriesSamples] = message.payload
        found = [a for r in rounds(batch) for a in self._score_round(r)]
        if not found:
            return
        self._found.inc(len(found))
        await asyncio.to_thread(self.events.put_many, found)
        for a in found:
            await self.bus.publish(ANOMALIES_TOPIC, a)

    def _score_round(self, points: list[tuple[Series, float, float]]) -> list[Anomaly]:
        last_ts = self._last_ts
        fresh = [p for p in points if p[1] > last_ts.get(p[0].key, -math.inf)]
        if len(fresh) < len(points):
            self._skipped.inc(len(points) - len(fresh))
        if not fresh:
            return []
        keys = [p[0].key for p in fresh]
        ts = np.fromiter((p[1] for p in fresh), dtype=np.float64, count=len(fresh))
        values = np.fromiter((p[2] for p in fresh), dtype=np.float64, count=len(fresh))
        ens = self.ensemble
        scores = ens.step(keys, ts, values)
        prob = scores.probability
        self._scored.inc(int(np.count_nonzero(~np.isnan(prob))))
        for k, t in zip(keys, ts.tolist(), strict=True):
            last_ts[k] = t
        now = self.clock.now()
        out = []
        for i in np.flatnonzero(ens.is_anomalous(prob)).tolist():
            series, t, v = fresh[i]
            p = float(prob[i])
            expected = float(scores.expected[i])
            out.append(
                Anomaly(
                    id=anomaly_id(series.key, t, DETECTOR),
                    at=now,
                    service=series.service,
                    series=series.key,
                    ts=t,
                    value=v,
                    expected=expected if math.isfinite(expected) else None,
                    score=surprise(p),
                    probability=p,
                    detector=DETECTOR,
                )
            )
        return out


def surprise(probability: float) -> float:
    """The raw score stored with an anomaly: -log10(1 - p), so 4 means one in ten thousand."""
    return 15.0 if probability >= 1.0 else -math.log10(1.0 - probability)


def rounds(batch: list[SeriesSamples]) -> list[list[tuple[Series, float, float]]]:
    """Cut a batch into rounds - every series' first point, then every second point, ... - so each round
    holds a series at most once (one vectorised step) and time order per series is kept. A scrape is one
    round; a backfill of many steps, or series with many points, become many rounds."""
    out: list[list[tuple[Series, float, float]]] = []
    occurrence: dict[str, int] = {}
    for ss in batch:
        k = ss.series.key
        i = occurrence.get(k, 0)
        occurrence[k] = i + len(ss)
        for j, (t, v) in enumerate(zip(ss.timestamps, ss.values, strict=True)):
            if i + j == len(out):
                out.append([])
            out[i + j].append((ss.series, t, v))
    return out
