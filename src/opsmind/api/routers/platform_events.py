"""Platform events: what the fleet reports about itself (deployments, restarts, OOM kills, scaling)."""

from __future__ import annotations

import asyncio
import math

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from opsmind.api.deps import EngineDep
from opsmind.ingest.errors import ahead_of_clock
from opsmind.types import Event

router = APIRouter(prefix="/api/v1/events", tags=["events"])
MAX_EVENTS_PER_REQUEST = 10_000


class EventCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ts: float | None = Field(None, description="Unix seconds; default: when it was received")
    service: str | None = Field(None, max_length=256)
    reason: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")
    message: str = Field("", max_length=4096)
    pod: str | None = Field(None, max_length=256)
    node: str | None = Field(None, max_length=256)

    @field_validator("ts")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and (not math.isfinite(v) or v < 0):
            raise ValueError("must be a finite number of seconds >= 0")
        return v


class EventsCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventCreate] = Field(max_length=MAX_EVENTS_PER_REQUEST)


class EventsAccepted(BaseModel):
    events: int


@router.post("", response_model=EventsAccepted)
async def push_events(body: EventsCreate, engine: EngineDep) -> EventsAccepted:
    """Store a batch of platform events (all or none); invalid items are refused with their index."""
    now = engine.clock.now()
    for i, e in enumerate(body.events):
        if e.ts is not None and (
            error := ahead_of_clock(f"events[{i}].ts", e.ts, now, engine.settings.ingest.future_grace_s)
        ):
            raise HTTPException(status_code=422, detail=error.reason)
    events = [
        Event(
            at=e.ts if e.ts is not None else now,
            service=e.service,
            reason=e.reason,
            message=e.message,
            pod=e.pod,
            node=e.node,
            source="push",
        )
        for e in body.events
    ]
    return EventsAccepted(events=await engine.ingest_events(events, "push"))


@router.get("", response_model=list[Event])
async def list_events(
    engine: EngineDep,
    service: str | None = None,
    # NaN matches no time: it would answer an empty list as if nothing had happened. Nor is infinity a time.
    since: float | None = Query(None, allow_inf_nan=False, description="Unix seconds"),
    limit: int = Query(100, ge=1, le=10_000),
) -> list[Event]:
    """Newest platform events first."""
    return await asyncio.to_thread(engine.store.find, Event, service=service, since=since, limit=limit)
