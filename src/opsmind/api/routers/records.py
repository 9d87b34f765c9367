"""Anomalies, incidents and the audit log: read-only views of the EventStore."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from opsmind.api.auth import acting
from opsmind.api.deps import EngineDep
from opsmind.types import Anomaly, AuditEntry, Incident, IncidentStatus

router = APIRouter(prefix="/api/v1")


def _anomaly_json(a: Anomaly) -> dict[str, Any]:
    d = a.model_dump(mode="json")
    for k in ("value", "expected", "score"):
        v = d.get(k)
        if isinstance(v, float) and not math.isfinite(v):
            d[k] = None
    return d


@router.get("/anomalies", tags=["anomalies"])
async def list_anomalies(
    engine: EngineDep,
    service: str | None = None,
    # NaN matches no time: it would answer an empty list as if nothing had happened. Nor is infinity a time.
    since: float | None = Query(None, allow_inf_nan=False, description="Unix seconds"),
    limit: int = Query(100, ge=1, le=10_000),
) -> list[dict[str, Any]]:
    """Newest anomalies first, optionally of one service and since a time (Unix seconds)."""
    rows = await asyncio.to_thread(engine.store.find, Anomaly, service=service, since=since, limit=limit)
    return [_anomaly_json(a) for a in rows]


@router.get("/incidents", response_model=list[Incident], tags=["incidents"])
async def list_incidents(
    engine: EngineDep,
    status: IncidentStatus | None = None,
    service: str | None = None,
    limit: int = Query(100, ge=1, le=10_000),
) -> list[Incident]:
    """Newest incidents first, optionally filtered by status and service."""
    return await asyncio.to_thread(
        engine.store.find, Incident, service=service, status=status.value if status else None, limit=limit
    )


@router.get("/incidents/{incident_id}", response_model=Incident, tags=["incidents"])
async def get_incident(incident_id: str, engine: EngineDep) -> Incident:
    inc = await asyncio.to_thread(engine.store.get, Incident, incident_id)
    if inc is None:
        raise HTTPException(404, f"no incident with id {incident_id!r}")
    return inc


@router.get("/audit", response_model=list[AuditEntry], tags=["audit"])
async def list_audit(
    engine: EngineDep, service: str | None = None, limit: int = Query(100, ge=1, le=10_000)
) -> list[AuditEntry]:
    """What OpsMind (and later people) did, newest first."""
    return await asyncio.to_thread(engine.store.find, AuditEntry, service=service, limit=limit)


class IncidentMove(BaseModel):
    """An operator's move along the lifecycle: acknowledge, mitigate, resolve, or reopen."""

    model_config = ConfigDict(extra="forbid")

    status: IncidentStatus
    by: str | None = Field(None, min_length=1, max_length=256, description="required while auth is off")
    reason: str = Field("", max_length=4096)


@router.post("/incidents/{incident_id}/status", response_model=Incident, tags=["incidents"])
async def move_incident(
    incident_id: str, body: IncidentMove, request: Request, engine: EngineDep
) -> Incident:
    """Move an incident: ``acknowledged`` (someone owns it), ``mitigating`` (a fix is under way),
    ``resolved``, or ``open`` again (a resolved one, within the reopen window). The move is recorded in
    its timeline and the audit log, and notified like any change. 404: no such incident; 409: the move
    is not possible from its state (the reason says which moves are)."""
    by = acting(request, body.by, "by")
    if await asyncio.to_thread(engine.store.get, Incident, incident_id) is None:
        raise HTTPException(404, f"no incident with id {incident_id!r}")
    try:
        return await engine.move_incident(incident_id, body.status, by, body.reason)
    except LookupError as exc:
        raise HTTPException(409, str(exc).strip("'\"")) from exc
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from exc
