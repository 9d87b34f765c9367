"""Scoring one round of points: data hygiene, then the detection ensemble, then anomaly records.

The detect stage calls this for every round of a batch; the noise benchmark calls the same object over a
simulated fleet, so what it measures is what the stage does. Hygiene (:mod:`opsmind.detect.hygiene`)
stands in front: duplicates, out-of-order points and non-finite values are skipped and counted by
reason, and counters (``*_total``) are scored as per-second rates with resets handled. An anomaly's
``value`` is what the detectors saw (the rate, for a counter); its id is derived from the series, the
timestamp and the detector, so rescoring a redelivered point yields the same record.

With a contextual detector (:class:`~opsmind.detect.cad.CadDetector`, ``detect.context``), every cleaned
point of the first ``context_series`` series seen (``detect.context_series``: CAD costs about 1 ms a point
and up to about 10 MB a series) is also scored for sequence novelty; a point the ensemble let pass but
CAD reports at or above ``CONTEXT_ALARM`` becomes an anomaly of detector ``cad`` (score and probability =
CAD's reported score, which is not calibrated). CAD learns every cleaned point, as published.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from opsmind.detect.cad import BASE_THRESHOLD, CadDetector
from opsmind.detect.ensemble import Ensemble
from opsmind.detect.golden import GoldenVectors, ServiceVector
from opsmind.detect.hygiene import REASONS, Hygiene
from opsmind.telemetry import Telemetry
from opsmind.types import Anomaly, Series, anomaly_id

DETECTOR = "ensemble"
# CAD's own base threshold; the NAB-style threshold sweep on the trace corpus of ``opsmind bench
# nab-corpus`` (seeds 1, 3, 4, 5) landed next to it: 0.734 (standard) and 0.765 (low false positives).
CONTEXT_ALARM = BASE_THRESHOLD


def surprise(probability: float) -> float:
    """The raw score stored with an anomaly: -log10(1 - p), so 4 means one in ten thousand."""
    return 15.0 if probability >= 1.0 else -math.log10(1.0 - probability)


@dataclass(frozen=True)
class ContextJob:
    """One round's points for the contextual detector: cleaned values, and whether the ensemble flagged
    each."""

    series: list[Series]
    rows: npt.NDArray[np.int64]
    ts: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]
    flagged: npt.NDArray[np.bool_]
    now: float


class PointScorer:
    def __init__(
        self,
        ensemble: Ensemble,
        telemetry: Telemetry,
        golden: GoldenVectors | None = None,
        context: CadDetector | None = None,
        context_series: int = 100,
    ) -> None:
        self.ensemble = ensemble
        self.context = context
        self.context_series = context_series
        self.hygiene = Hygiene()
        self.golden = golden
        self._scored = telemetry.counter("opsmind_detect_points_scored_total", "Points scored by detectors")
        self._skipped = telemetry.counter(
            "opsmind_detect_points_skipped_total",
            "Points the detectors did not see, by hygiene rule (see opsmind.detect.hygiene)",
            ("reason",),
        )
        self._marked = 0  # rows below this have had their counter flag set

    def score_round(
        self,
        points: list[tuple[Series, float, float]],
        now: float,
        vectors: list[ServiceVector] | None = None,
        context_jobs: list[ContextJob] | None = None,
    ) -> list[Anomaly]:
        """Score one round (each series at most once) and return its anomalies; with golden vectors on,
        the round's cleaned points are also grouped into ``vectors`` for the multivariate detector. With
        ``context_jobs`` given, the contextual detector's share of the round is appended there for the
        caller to run later with :meth:`run_context` (the stage runs it off the event loop), instead of
        being run here."""
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
        if self.golden is not None and vectors is not None:
            # Counters enter as their rates, like the detectors see them.
            vectors.extend(self.golden.vectors((points[i][0], ts[i], clean.values[i]) for i in kept.tolist()))
        scores = ens.step_rows(rows[kept], ts[kept], clean.values[kept])
        prob = scores.probability
        self._scored.inc(int(np.count_nonzero(~np.isnan(prob))))
        flagged = ens.is_anomalous(prob)
        out = []
        if self.context is not None:
            # CAD's memory and time per series are large: only the first ``context_series`` series seen.
            sub = np.flatnonzero(rows[kept] < self.context_series)
            if len(sub):
                k = kept[sub]
                job = ContextJob(
                    [points[i][0] for i in k.tolist()], rows[k], ts[k], clean.values[k], flagged[sub], now
                )
                if context_jobs is None:
                    out.extend(self.run_context([job]))
                else:
                    context_jobs.append(job)
        for j in np.flatnonzero(flagged).tolist():
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

    def run_context(self, jobs: list[ContextJob]) -> list[Anomaly]:
        """CAD's novelties among the points the ensemble did not flag (one anomaly per point is enough),
        job by job in round order."""
        cad = self.context
        assert cad is not None
        out = []
        for job in jobs:
            novelty = cad.score_many(job.rows, job.ts, job.values)
            cad.learn_many(job.rows, job.ts, job.values, np.isfinite(job.values))
            for j in np.flatnonzero((novelty >= CONTEXT_ALARM) & ~job.flagged).tolist():
                series, t = job.series[j], float(job.ts[j])
                score = min(float(novelty[j]), 1.0)
                out.append(
                    Anomaly(
                        id=anomaly_id(series.key, t, CadDetector.name),
                        at=job.now,
                        service=series.service,
                        series=series.key,
                        ts=t,
                        value=float(job.values[j]),
                        expected=None,
                        score=score,
                        probability=score,
                        detector=CadDetector.name,
                    )
                )
        return out
