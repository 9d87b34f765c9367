"""The detect stage: samples in, anomalies out.

Consumes ``samples`` batches from the bus, scores every point with the configured detector, stores
each anomaly in the EventStore and publishes it on ``anomalies``. Anomaly ids are derived from the series
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
from opsmind.detect.mad import RollingMadDetector, calibrate
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
        single = [ss for ss in batch if len(ss) == 1]
        if single:
            found.extend(self._score_single_points(single))
        for ss in batch:
            if len(ss) != 1:
                found.extend(self._score_series(ss))
        if not found:
            return
        self._found.inc(len(found))
        for a in found:
            await asyncio.to_thread(self.events.put, a)
            await self.bus.publish(ANOMALIES_TOPIC, a)

    def _anomaly(self, ss: SeriesSamples, ts: float, value: float, score: float, expected: float) -> Anomaly:
        key = ss.series.key
        return Anomaly(
            id=anomaly_id(key, ts, self.detector.name),
            at=self.clock.now(),
            service=ss.series.service,
            series=key,
            ts=ts,
            value=value,
            expected=expected,
            score=score,
            probability=calibrate(score, self.detector.threshold),
            detector=self.detector.name,
        )

    def _score_single_points(self, batch: list[SeriesSamples]) -> list[Anomaly]:
        """The common shape (one new point for each of many series, as a scrape or remote-write brings),
        scored a whole round at a time. A batch holding several steps of the same series (a backfill, a
        replay) is cut into rounds - every series' first point, then every second point, ... - so each
        round has a series at most once and time order per series is kept."""
        rounds: list[list[SeriesSamples]] = []
        occurrence: dict[str, int] = {}
        for ss in batch:
            k = ss.series.key
            i = occurrence.get(k, 0)
            occurrence[k] = i + 1
            if i == len(rounds):
                rounds.append([])
            rounds[i].append(ss)
        return [a for r in rounds for a in self._score_round(r)]

    def _score_round(self, batch: list[SeriesSamples]) -> list[Anomaly]:
        last_ts = self._last_ts
        uniq = [ss for ss in batch if ss.timestamps[0] > last_ts.get(ss.series.key, -math.inf)]
        if not uniq:
            return []
        keys = [ss.series.key for ss in uniq]
        ts = np.fromiter((ss.timestamps[0] for ss in uniq), dtype=np.float64, count=len(uniq))
        values = np.fromiter((ss.values[0] for ss in uniq), dtype=np.float64, count=len(uniq))
        det = self.detector
        rows, scores, expected = det.score_many(keys, values)
        with np.errstate(invalid="ignore"):
            anomalous = scores >= det.threshold
        det.learn_many(keys, rows, ts, values, anomalous)
        self._scored.inc(int(np.count_nonzero(~np.isnan(scores))))
        for k, t in zip(keys, ts.tolist(), strict=True):
            last_ts[k] = t
        return [
            self._anomaly(uniq[i], float(ts[i]), float(values[i]), float(scores[i]), float(expected[i]))
            for i in np.flatnonzero(anomalous)
        ]

    def _score_series(self, ss: SeriesSamples) -> list[Anomaly]:
        det = self.detector
        key = ss.series.key
        last = self._last_ts.get(key, -math.inf)
        out: list[Anomaly] = []
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
                out.append(self._anomaly(ss, ts, value, score.score, score.expected))
        self._last_ts[key] = last
        return out
