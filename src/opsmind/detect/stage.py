"""The detect stage: samples in, anomalies out.

Consumes ``samples`` batches from the bus, scores every point with the detection ensemble
(:mod:`opsmind.detect.ensemble`, vectorised over all series of a round), stores each anomaly in the
EventStore and publishes it on ``anomalies``. Data hygiene (:mod:`opsmind.detect.hygiene`) stands in
front: duplicates, out-of-order points (redeliveries included) and non-finite values are skipped and
counted by reason, and counters (``*_total``) are scored as per-second rates with resets handled. An
anomaly's ``value`` is what the detectors saw (the rate, for a counter). Anomaly ids are derived from
the series and timestamp, so a redelivered batch produces the same records (idempotent upserts).

With ``detect.multivariate`` on, the cleaned points of each round are also grouped into per-service
golden-signal vectors (:mod:`opsmind.detect.golden`) and scored by
:class:`~opsmind.detect.multivariate.ServiceMultivariate`; its anomalies carry the detector name
``multivariate`` and the pseudo-series ``golden_signals{service="..."}``, their value is the robust
z-score. It runs in a worker thread (an IsolationForest scores one vector in a few milliseconds and
refits in a few hundred), so the event loop keeps serving ingestion meanwhile.
"""

from __future__ import annotations

import asyncio
import math

import numpy as np

from opsmind.bus.protocols import Bus, Message
from opsmind.bus.stage import Stage
from opsmind.clock import Clock
from opsmind.config import DetectSettings
from opsmind.detect.ensemble import Ensemble
from opsmind.detect.golden import GoldenVectors, ServiceVector
from opsmind.detect.hygiene import REASONS, Hygiene
from opsmind.detect.multivariate import ServiceMultivariate
from opsmind.store.protocols import EventStore
from opsmind.telemetry import Telemetry
from opsmind.types import Anomaly, Series, SeriesSamples, anomaly_id

SAMPLES_TOPIC = "samples"
ANOMALIES_TOPIC = "anomalies"
DETECTOR = "ensemble"
MULTIVARIATE = "multivariate"


class DetectStage(Stage):
    name = "detect"
    topic = SAMPLES_TOPIC

    def __init__(
        self, bus: Bus, clock: Clock, telemetry: Telemetry, events: EventStore, settings: DetectSettings
    ) -> None:
        super().__init__(bus, clock, telemetry)
        self.events = events
        self.ensemble = Ensemble(threshold=settings.threshold, relearn_after=settings.relearn_after)
        self.hygiene = Hygiene()
        self.golden = GoldenVectors() if settings.multivariate else None
        self.multivariate = ServiceMultivariate() if settings.multivariate else None
        self._scored = telemetry.counter("opsmind_detect_points_scored_total", "Points scored by detectors")
        self._found = telemetry.counter("opsmind_detect_anomalies_total", "Anomalous points found")
        self._skipped = telemetry.counter(
            "opsmind_detect_points_skipped_total",
            "Points the detectors did not see, by hygiene rule (see opsmind.detect.hygiene)",
            ("reason",),
        )
        self._marked = 0  # rows below this have had their counter flag set

    async def handle(self, message: Message) -> None:
        batch: list[SeriesSamples] = message.payload
        found: list[Anomaly] = []
        vectors: list[ServiceVector] = []
        for r in rounds(batch):
            found.extend(self._score_round(r, vectors))
        if vectors:
            found.extend(await asyncio.to_thread(self._score_vectors, vectors))
        if not found:
            return
        self._found.inc(len(found))
        await asyncio.to_thread(self.events.put_many, found)
        for a in found:
            await self.bus.publish(ANOMALIES_TOPIC, a)

    def _score_vectors(self, vectors: list[ServiceVector]) -> list[Anomaly]:
        model = self.multivariate
        assert model is not None  # vectors are only built when it exists
        now = self.clock.now()
        out = []
        for v in vectors:
            score = model.update(v.service, v.ts, v.values)
            if score is None or not score.anomalous:
                continue
            key = Series.of("golden_signals", {"service": v.service}).key
            out.append(
                Anomaly(
                    id=anomaly_id(key, v.ts, MULTIVARIATE),
                    at=now,
                    service=v.service,
                    series=key,
                    ts=v.ts,
                    value=score.z,
                    expected=None,
                    score=score.z,
                    probability=score.probability,
                    detector=MULTIVARIATE,
                )
            )
        return out

    def _score_round(
        self, points: list[tuple[Series, float, float]], vectors: list[ServiceVector]
    ) -> list[Anomaly]:
        ens = self.ensemble
        keys = [p[0].key for p in points]
        rows = ens.index.rows(keys)
        if len(ens.index) > self._marked:
            # New series: tell hygiene which are counters (their rate is what the detectors score).
            new = np.flatnonzero(rows >= self._marked)
            self.hygiene.mark_counters(rows[new], [points[i][0].name for i in new.tolist()])
            self._marked = len(ens.index)
        ts = np.fromiter((p[1] for p in points), dtype=np.float64, count=len(points))
        values = np.fromiter((p[2] for p in points), dtype=np.float64, count=len(points))
        clean = self.hygiene.clean_many(rows, ts, values)
        dropped = ~clean.keep
        if dropped.any():
            for code, n in zip(*np.unique(clean.reason[dropped], return_counts=True), strict=True):
                self._skipped.labels(REASONS.get(int(code), "other")).inc(int(n))
        kept = np.flatnonzero(clean.keep)
        if not len(kept):
            return []
        if self.golden is not None:
            # Counters enter as their rates, like the detectors see them.
            vectors.extend(self.golden.vectors((points[i][0], ts[i], clean.values[i]) for i in kept.tolist()))
        scores = ens.step_rows(rows[kept], ts[kept], clean.values[kept])
        prob = scores.probability
        self._scored.inc(int(np.count_nonzero(~np.isnan(prob))))
        now = self.clock.now()
        out = []
        for j in np.flatnonzero(ens.is_anomalous(prob)).tolist():
            i = int(kept[j])
            series, t, _ = points[i]
            p = float(prob[j])
            expected = float(scores.expected[j])
            out.append(
                Anomaly(
                    id=anomaly_id(series.key, t, DETECTOR),
                    at=now,
                    service=series.service,
                    series=series.key,
                    ts=t,
                    value=float(clean.values[i]),
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
