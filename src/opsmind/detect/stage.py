"""The detect stage: samples in, anomalies out.

Consumes ``samples`` batches from the bus, scores every point with the detection ensemble
(:mod:`opsmind.detect.ensemble`, vectorised over all series of a round), stores each anomaly in the
EventStore and publishes it on ``anomalies``. Data hygiene (:mod:`opsmind.detect.hygiene`) stands in
front: duplicates, out-of-order points (redeliveries included) and non-finite values are skipped and
counted by reason, and counters (``*_total``) are scored as per-second rates with resets handled. An
anomaly's ``value`` is what the detectors saw (the rate, for a counter). Anomaly ids are derived from
the series and timestamp, so a redelivered batch produces the same records (idempotent upserts).
A new series is learned but not judged during its warm-up (its first five minutes, at most 60 points),
and a metric with one bad direction (readiness, ``up``, availability, error ratios: see
:func:`opsmind.detect.golden.direction_of`) is judged on that side only, so a new pod starting up and
becoming ready is not reported (see :mod:`opsmind.detect.ensemble`).

With ``detect.context`` on (off by default: see its setting), every cleaned point of the first
``detect.context_series`` series is also scored by CAD OSE (:mod:`opsmind.detect.cad`), in a worker
thread, and a novelty the ensemble missed becomes an anomaly of detector ``cad``.

With ``detect.multivariate`` on, the cleaned points of each round are also grouped into per-service
golden-signal vectors (:mod:`opsmind.detect.golden`) and scored by
:class:`~opsmind.detect.multivariate.ServiceMultivariate`; its anomalies carry the detector name
``multivariate`` and the pseudo-series ``golden_signals{service="..."}``, their value is the robust
z-score. It runs in a worker thread (an IsolationForest scores one vector in a few milliseconds and
refits in a few hundred), so the event loop keeps serving ingestion meanwhile.
"""

from __future__ import annotations

import asyncio
import time

from opsmind.bus.protocols import Bus, Message
from opsmind.bus.stage import Stage
from opsmind.clock import Clock
from opsmind.config import DetectSettings
from opsmind.detect.cad import CadDetector
from opsmind.detect.ensemble import Ensemble, warm_kernels
from opsmind.detect.golden import GoldenVectors, ServiceVector
from opsmind.detect.multivariate import ServiceMultivariate
from opsmind.detect.points import ContextJob, PointScorer
from opsmind.store.protocols import EventStore
from opsmind.telemetry import Telemetry
from opsmind.types import Anomaly, Series, SeriesSamples, anomaly_id

SAMPLES_TOPIC = "samples"
ANOMALIES_TOPIC = "anomalies"
MULTIVARIATE = "multivariate"
YIELD_AFTER_S = 0.02  # longest the scoring of one batch holds the event loop between two yields


class DetectStage(Stage):
    name = "detect"
    topic = SAMPLES_TOPIC

    def __init__(
        self, bus: Bus, clock: Clock, telemetry: Telemetry, events: EventStore, settings: DetectSettings
    ) -> None:
        super().__init__(bus, clock, telemetry)
        self.events = events
        # Build the ensemble's compiled loops now, before the engine serves: built on the first scrape
        # instead, a machine's first compilation (a few seconds) would hold the event loop and the API.
        warm_kernels()
        self.scorer = PointScorer(
            Ensemble(
                threshold=settings.threshold,
                relearn_after=settings.relearn_after,
                warmup_s=settings.new_series_warmup_s,
            ),
            telemetry,
            golden=GoldenVectors() if settings.multivariate else None,
            context=CadDetector() if settings.context else None,
            context_series=settings.context_series,
        )
        self.ensemble = self.scorer.ensemble
        self.multivariate = ServiceMultivariate() if settings.multivariate else None
        self._found = telemetry.counter("opsmind_detect_anomalies_total", "Anomalous points found")

    async def handle(self, message: Message) -> None:
        batch: list[SeriesSamples] = message.payload
        found: list[Anomaly] = []
        vectors: list[ServiceVector] = []
        jobs: list[ContextJob] = []
        started = time.monotonic()
        for r in rounds(batch):
            found.extend(self.scorer.score_round(r, self.clock.now(), vectors, jobs))
            if time.monotonic() - started > YIELD_AFTER_S:
                # A backfill is thousands of rounds (about 1 ms each): scored in one go, it would hold the
                # event loop, and with it the API, for seconds. Nothing else touches the scorer meanwhile:
                # the stage handles one message at a time.
                await asyncio.sleep(0)
                started = time.monotonic()
        if jobs:
            # CAD is plain Python at about 1 ms a point: a backfill would stall the event loop (and the API).
            found.extend(await asyncio.to_thread(self.scorer.run_context, jobs))
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
        by_service: dict[str, list[ServiceVector]] = {}
        for v in vectors:
            by_service.setdefault(v.service, []).append(v)
        found: list[tuple[float, str, Anomaly]] = []
        for service, own in by_service.items():
            key = Series.of("golden_signals", {"service": service}).key
            scores = model.update_many(service, [v.ts for v in own], [v.values for v in own])
            for v, score in zip(own, scores, strict=True):
                if score is None or not score.anomalous:
                    continue
                anomaly = Anomaly(
                    id=anomaly_id(key, v.ts, MULTIVARIATE),
                    at=now,
                    service=service,
                    series=key,
                    ts=v.ts,
                    value=score.z,
                    expected=None,
                    score=score.z,
                    probability=score.probability,
                    detector=MULTIVARIATE,
                )
                found.append((v.ts, service, anomaly))
        found.sort(key=lambda f: (f[0], f[1]))  # in time order, as they would have been found live
        return [a for _, _, a in found]


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
