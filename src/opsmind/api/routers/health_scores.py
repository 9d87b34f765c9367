"""Service health: a 0-100 score from the golden signals of one service, computed on request.

The score itself is :func:`opsmind.detect.health.health_score`; this router reads its inputs from the
stores. For every series of the service whose metric maps to a golden signal it reads the last
``window`` seconds of raw points (counters, named ``*_total``, become per-second rates), takes the median
of the last ``recent`` seconds as the current value and the median of the rest as the baseline.
Traffic is the sum over its series; for the other signals every series is a reading and the worst one
speaks. A latency summary with several quantiles is read at its preferred quantile (p95 first). Recent
anomalies of the service raise the penalty of the signal they were found on; anomalies on other series
count as their own contribution. Each computed score is also exported as the gauge
``opsmind_service_health_score{service}``.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import asdict

import numpy as np
from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from opsmind.api.deps import EngineDep
from opsmind.detect.health import (
    LATENCY,
    LATENCY_QUANTILES,
    OTHER,
    TRAFFIC,
    HealthScore,
    SignalReading,
    health_score,
    signal_of,
    summarise_window,
)
from opsmind.detect.hygiene import counter_rates, is_counter
from opsmind.engine import Engine
from opsmind.types import Anomaly, InvalidSeriesError, Series

router = APIRouter(prefix="/api/v1/services", tags=["services"])
SERIES_SCAN_LIMIT = 100_000
ANOMALY_SCAN_LIMIT = 10_000
GAUGE = "opsmind_service_health_score"


class ContributionPublic(BaseModel):
    signal: str
    value: float | None
    baseline: float | None
    penalty: float
    weight: float
    anomaly_probability: float
    series: str | None
    note: str


class HealthPublic(BaseModel):
    service: str
    score: float | None
    status: str
    contributions: list[ContributionPublic]
    missing: list[str]
    explanation: str
    window_s: float
    at: float


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _latency_choice(series: list[Series]) -> list[Series]:
    """The latency series that speak for the service: unlabelled ones plus the preferred quantile."""
    present = {s.label("quantile") for s in series}
    best = next((q for q in LATENCY_QUANTILES if q in present), None)
    return [s for s in series if s.label("quantile") in (None, best)]


def _anomaly_probabilities(engine: Engine, service: str, since: float, data_since: float) -> dict[str, float]:
    """The highest recent anomaly probability per golden signal, and under ``OTHER`` for the rest.

    Recent means the anomalous *point* is recent (``ts >= data_since``), not only its detection: a backfill
    or a replay detects hour-old anomalies now, and those say nothing about the service's current state."""
    out: dict[str, float] = {}
    for a in engine.store.find(Anomaly, service=service, since=since, limit=ANOMALY_SCAN_LIMIT):
        if a.ts < data_since:
            continue
        try:
            signal = signal_of(Series.parse(a.series).name) or OTHER
        except InvalidSeriesError:
            signal = OTHER
        out[signal] = max(out.get(signal, 0.0), a.probability)
    return out


def compute_health(engine: Engine, service: str, window_s: float, recent_s: float) -> HealthScore | None:
    """The health of ``service`` from the stores, or None when no stored series carries it."""
    infos = engine.store.series({"service": service}, SERIES_SCAN_LIMIT)
    if not infos:
        return None
    now = engine.clock.now()
    start = now - window_s
    by_signal: dict[str, list[Series]] = {}
    for info in infos:
        signal = signal_of(info.series.name)
        if signal is not None:
            by_signal.setdefault(signal, []).append(info.series)
    if LATENCY in by_signal:
        by_signal[LATENCY] = _latency_choice(by_signal[LATENCY])
    anomalies = _anomaly_probabilities(engine, service, start, now - recent_s)
    readings: list[SignalReading] = []
    for signal, series_list in sorted(by_signal.items()):
        summaries: list[tuple[Series, float, float | None]] = []
        for s in series_list:
            rr = engine.store.query(s, start, now, "raw")
            ts = np.asarray(rr.timestamps, dtype=np.float64)
            values = np.asarray(rr.values, dtype=np.float64)
            if is_counter(s.name):
                ts, values = counter_rates(ts, values)
            current, baseline = summarise_window(ts, values, now, recent_s)
            if math.isfinite(current):
                summaries.append((s, current, baseline))
        if not summaries:
            continue
        prob = anomalies.get(signal, 0.0)
        if signal == TRAFFIC:
            baselines = [b for _, _, b in summaries]
            total_baseline = None if any(b is None for b in baselines) else sum(b or 0.0 for b in baselines)
            key = summaries[0][0].key if len(summaries) == 1 else f"sum of {len(summaries)} series"
            readings.append(SignalReading(signal, sum(c for _, c, _ in summaries), total_baseline, prob, key))
        else:
            readings.extend(SignalReading(signal, c, b, prob, s.key) for s, c, b in summaries)
    return health_score(service, readings, anomalies.get(OTHER, 0.0))


@router.get(
    "/{name}/health",
    response_model=HealthPublic,
    responses={404: {"description": "no stored series carries this service"}},
)
async def service_health(
    name: str,
    engine: EngineDep,
    window: float = Query(900.0, gt=0, le=86_400, description="seconds of history to read"),
    recent: float = Query(120.0, gt=0, le=86_400, description="seconds that count as the current value"),
) -> HealthPublic:
    """The health score of one service (0-100, higher is healthier), with what each signal cost."""
    h = await asyncio.to_thread(compute_health, engine, name, window, min(recent, window))
    if h is None:
        raise HTTPException(404, f"no series carries service={name!r}")
    gauge = engine.telemetry.gauge(GAUGE, "Service health score, 0-100 (NaN when unknown)", ("service",))
    gauge.labels(name).set(math.nan if h.score is None else h.score)
    return HealthPublic(
        service=h.service,
        score=h.score,
        status=h.status,
        contributions=[
            ContributionPublic(**{**asdict(c), "value": _finite(c.value), "baseline": _finite(c.baseline)})
            for c in h.contributions
        ],
        missing=list(h.missing),
        explanation=h.explanation,
        window_s=window,
        at=engine.clock.now(),
    )
