"""Service health: a 0-100 score from the golden signals of one service, computed on request.

The score itself is :func:`opsmind.detect.health.health_score`; its inputs are read from the stores by
:func:`opsmind.engine.health_reading.compute_health` (shared with the live hub's ``health`` topic): for
every series of the service whose metric maps to a golden signal, the last ``window`` seconds of raw
points (counters, named ``*_total``, become per-second rates), the median of the last ``recent`` seconds
as the current value and the median of the rest as the baseline.

``/metrics`` exports every service's score with the default ``window`` and ``recent``, computed when it is
scraped by the same function (:func:`health_exposition`): ``opsmind_service_health_score{service}``, absent
for a service whose score is unknown (the route's ``score: null``; a NaN would break comparisons in alert
rules), and ``opsmind_service_health_status{service,status}``, 1 for its current status and 0 for the
others, so an unknown service is marked rather than just missing. Computed at scrape time rather than
kept from the last request or the live hub's timer: a gauge set on request froze at whatever a reader last
asked, and the hub's timer (off with ``live.enabled`` false or ``live.health_interval_s`` 0) lags by up to
its interval. The cost is one series scan plus the route's reads for each service: on SQLite about 0.2 s
for 100 services and 0.75 s for 300 (7 series each), most of it the store's raw range reads.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import asdict

from fastapi import APIRouter, HTTPException, Query
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from pydantic import BaseModel

from opsmind.api.deps import EngineDep
from opsmind.detect.health import STATUSES, HealthScore
from opsmind.engine import Engine, health_reading

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/services", tags=["services"])
GAUGE = "opsmind_service_health_score"
STATUS_GAUGE = "opsmind_service_health_status"
DEFAULT_WINDOW_S = 900.0
DEFAULT_RECENT_S = 120.0


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


def compute_health(engine: Engine, service: str, window_s: float, recent_s: float) -> HealthScore | None:
    """The health of ``service`` now, or None when no stored series carries it (see
    :func:`opsmind.engine.health_reading.compute_health`, which the live hub's ``health`` topic uses too)."""
    return health_reading.compute_health(
        engine.store, engine.store, engine.clock.now(), service, window_s, recent_s
    )


def health_exposition(engine: Engine) -> bytes:
    """Every service's health now, in the Prometheus text format (see the module docstring). Blocking
    (store reads): ``/metrics`` calls it from a worker thread."""
    try:
        scores = health_reading.compute_all(
            engine.store, engine.store, engine.clock.now(), DEFAULT_WINDOW_S, DEFAULT_RECENT_S
        )
    except Exception as exc:  # a database that went away must not cost the scrape the engine's own metrics
        log.warning("metrics: no health scores, the store did not answer: %s", exc)
        return b""
    # A registry of its own, made per scrape: a service that stopped existing is not exported forever, and
    # the engine's registry stays cheap to read (Telemetry.value collects the whole registry).
    registry = CollectorRegistry(auto_describe=False)
    score = Gauge(GAUGE, "Service health score, 0-100; absent while unknown", ("service",), registry=registry)
    status = Gauge(
        STATUS_GAUGE,
        "Service health status: 1 for the current one, 0 for the others",
        ("service", "status"),
        registry=registry,
    )
    for name, h in scores.items():
        if h.score is not None:
            score.labels(name).set(h.score)
        for one in STATUSES:
            status.labels(name, one).set(1.0 if h.status == one else 0.0)
    return generate_latest(registry)


@router.get(
    "/{name:label}/health",
    response_model=HealthPublic,
    responses={404: {"description": "no stored series carries this service"}},
)
async def service_health(
    name: str,
    engine: EngineDep,
    window: float = Query(DEFAULT_WINDOW_S, gt=0, le=86_400, description="seconds of history to read"),
    recent: float = Query(
        DEFAULT_RECENT_S, gt=0, le=86_400, description="seconds that count as the current value"
    ),
) -> HealthPublic:
    """The health score of one service (0-100, higher is healthier), with what each signal cost."""
    h = await asyncio.to_thread(compute_health, engine, name, window, min(recent, window))
    if h is None:
        raise HTTPException(404, f"no series carries service={name!r}")
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
