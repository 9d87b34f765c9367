"""Liveness and the engine's own metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from opsmind.api.deps import EngineDep
from opsmind.api.routers.health_scores import health_exposition
from opsmind.engine import Engine

router = APIRouter()


@router.get("/api/v1/health", tags=["health"])
async def health(engine: EngineDep) -> dict[str, Any]:
    """Whether the engine runs, the state of each stage, how many series it holds and in which backends
    (``degraded`` with ``storage_error`` when the store does not answer)."""
    return await asyncio.to_thread(engine.health)


def _exposition(engine: Engine) -> bytes:
    return generate_latest(engine.telemetry.registry) + health_exposition(engine)


@router.get("/metrics", tags=["health"], response_class=Response)
async def metrics(engine: EngineDep) -> Response:
    """OpsMind's self-metrics and every service's health score, in the Prometheus text format."""
    # In a worker thread: the health scores read the store, which must not stall the event loop.
    return Response(await asyncio.to_thread(_exposition, engine), media_type=CONTENT_TYPE_LATEST)
