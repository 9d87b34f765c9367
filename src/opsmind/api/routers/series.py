"""Series: list what is stored and query a range at raw or rolled-up resolution."""

from __future__ import annotations

import asyncio
import math
from typing import Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from opsmind.api.deps import EngineDep
from opsmind.ingest.push import MAX_TIMESTAMP
from opsmind.types import InvalidSeriesError, Series

router = APIRouter(prefix="/api/v1/series", tags=["series"])


class SeriesPublic(BaseModel):
    key: str
    name: str
    labels: dict[str, str]
    service: str | None
    first_ts: float | None
    last_ts: float | None


class RangePublic(BaseModel):
    series: str
    resolution: str
    timestamps: list[float]
    values: list[float | None]
    minimums: list[float | None] = []
    maximums: list[float | None] = []
    counts: list[int] = []


def parse_matchers(match: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in match:
        name, sep, value = m.partition("=")
        if not sep or not name:
            raise HTTPException(400, f"invalid matcher {m!r}: expected label=value")
        out[name.strip()] = value.strip().strip('"')
    return out


def _json_floats(values: list[float]) -> list[float | None]:
    # JSON has no NaN or infinity; such points are sent as null rather than breaking the response.
    return [v if math.isfinite(v) else None for v in values]


@router.get("", response_model=list[SeriesPublic])
async def list_series(
    engine: EngineDep, match: list[str] = Query(default=[]), limit: int = Query(1000, ge=1, le=100_000)
) -> list[SeriesPublic]:
    """Stored series whose labels equal every ``match`` (``label=value``, ``__name__`` for the metric)."""
    infos = await asyncio.to_thread(engine.store.series, parse_matchers(match), limit)
    return [
        SeriesPublic(
            key=i.series.key,
            name=i.series.name,
            labels=dict(i.series.labels),
            service=i.series.service,
            first_ts=i.first_ts,
            last_ts=i.last_ts,
        )
        for i in infos
    ]


@router.get("/query", response_model=RangePublic)
async def query_range(
    engine: EngineDep,
    series: str = Query(..., description='series key, e.g. http_requests{service="gateway"}'),
    start: float | None = Query(None, description="Unix seconds; default one hour before end"),
    end: float | None = Query(None, description="Unix seconds; default now"),
    resolution: Literal["raw", "1m", "1h", "auto"] = "auto",
) -> RangePublic:
    try:
        s = Series.parse(series)
    except InvalidSeriesError as exc:
        raise HTTPException(400, str(exc)) from exc
    end_ts = engine.clock.now() if end is None else end
    start_ts = end_ts - 3600 if start is None else start
    if not (math.isfinite(start_ts) and math.isfinite(end_ts)) or start_ts > end_ts:
        raise HTTPException(400, "start must be a finite time not after end")
    # No sample is stored outside [0, MAX_TIMESTAMP) (ingest refuses them), so a wider window asks for
    # the same points; clamped, its milliseconds also fit the store's 64-bit integers.
    start_ts, end_ts = (min(max(t, 0.0), MAX_TIMESTAMP) for t in (start_ts, end_ts))
    r = await asyncio.to_thread(engine.store.query, s, start_ts, end_ts, resolution)
    return RangePublic(
        series=s.key,
        resolution=r.resolution,
        timestamps=r.timestamps,
        values=_json_floats(r.values),
        minimums=_json_floats(r.minimums),
        maximums=_json_floats(r.maximums),
        counts=r.counts,
    )
