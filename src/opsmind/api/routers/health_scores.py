"""Service health: a 0-100 score from the golden signals of one service, computed on request.

The score itself is :func:`opsmind.detect.health.health_score`; its inputs are read from the stores by
:func:`opsmind.engine.health_reading.compute_health` (shared with the live hub's ``health`` topic): for
every series of the service whose metric maps to a golden signal, the last ``window`` seconds of raw
points (counters, named ``*_total``, become per-second rates), the median of the last ``recent`` seconds
as the current value and the median of the rest as the baseline. A score computed with the default
``window`` and ``recent`` is also exported as the gauge ``opsmind_service_health_score{service}``.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import asdict

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from opsmind.api.deps import EngineDep
from opsmind.detect.health import HealthScore
from opsmind.engine import Engine, health_reading

router = APIRouter(prefix="/api/v1/services", tags=["services"])
GAUGE = "opsmind_service_health_score"
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
    if (window, recent) == (DEFAULT_WINDOW_S, DEFAULT_RECENT_S):
        # Only the default reading is the exported score: a reader asking about another window must not
        # rewrite what dashboards and alert rules scrape.
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
