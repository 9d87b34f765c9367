"""Silences: mute notifications for everything whose labels match, for a while (as in Alertmanager).

``POST /api/v1/silences`` creates one (matchers in Alertmanager's v2 shape), ``GET`` lists them with
their state, ``DELETE /api/v1/silences/{id}`` expires one now. Creating and expiring are recorded in the
audit log with who and why (*who* is the signed-in principal when access control is on). A bad
silence is refused with 422 and the reason; nothing is stored.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from opsmind.api.auth import acting
from opsmind.api.deps import EngineDep
from opsmind.incidents.muting import Matcher, MatcherError
from opsmind.types import AuditEntry, Silence

router = APIRouter(prefix="/api/v1/silences", tags=["silences"])
MAX_MATCHERS = 32
MAX_SILENCE_S = 366 * 86_400


class SilenceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    matchers: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_MATCHERS)
    startsAt: float | None = Field(None, description="Unix seconds; default now")  # noqa: N815
    endsAt: float = Field(description="Unix seconds, after startsAt")  # noqa: N815
    # Required while auth is off; with auth on the signed-in principal's name is recorded instead.
    createdBy: str | None = Field(None, min_length=1, max_length=256)  # noqa: N815
    comment: str = Field("", max_length=4096)


class SilencePublic(BaseModel):
    id: str
    state: str
    matchers: list[dict[str, Any]]
    startsAt: float  # noqa: N815
    endsAt: float  # noqa: N815
    createdBy: str  # noqa: N815
    comment: str


def _public(s: Silence, now: float) -> SilencePublic:
    return SilencePublic(
        id=s.id,
        state=s.state(now),
        matchers=list(s.matchers),
        startsAt=s.starts_at,
        endsAt=s.ends_at,
        createdBy=s.created_by,
        comment=s.comment,
    )


def _invalid(reason: str) -> HTTPException:
    return HTTPException(status_code=422, detail=reason)


@router.post("", response_model=SilencePublic, status_code=201, responses={422: {"description": "invalid"}})
async def create_silence(body: SilenceCreate, request: Request, engine: EngineDep) -> SilencePublic:
    """Create a silence; its matchers must all match for an incident to be muted."""
    now = engine.clock.now()
    created_by = acting(request, body.createdBy, "createdBy")
    try:
        matchers = [Matcher.parse(m, f"matchers.{i}").as_json() for i, m in enumerate(body.matchers)]
    except MatcherError as exc:
        raise _invalid(str(exc)) from exc
    start = now if body.startsAt is None else body.startsAt
    if not (math.isfinite(start) and math.isfinite(body.endsAt)):
        raise _invalid("startsAt and endsAt must be finite Unix seconds")
    if body.endsAt <= now:
        raise _invalid("endsAt is in the past: the silence would never be active")
    if body.endsAt <= start:
        raise _invalid(f"endsAt ({body.endsAt}) must be after startsAt ({start})")
    if body.endsAt - now > MAX_SILENCE_S:
        # Milliseconds sent as seconds look like this (a one-hour silence would last for ever), and a
        # silence meant for good hides every future incident it matches without anyone seeing it listed.
        raise _invalid(
            f"endsAt ({body.endsAt}) is more than {MAX_SILENCE_S // 86_400} days ahead: Unix seconds, "
            "not milliseconds; a silence ends, renew it when it must go on"
        )
    silence = Silence(
        at=now,
        matchers=tuple(matchers),
        starts_at=start,
        ends_at=body.endsAt,
        created_by=created_by,
        comment=body.comment,
    )
    audit = AuditEntry(
        at=now,
        actor=f"user:{created_by}",
        verb="silence",
        subject=silence.id,
        detail={"matchers": matchers, "until": body.endsAt, "comment": body.comment},
    )
    await asyncio.to_thread(engine.store.put_many, [silence, audit])
    return _public(silence, now)


@router.get("", response_model=list[SilencePublic])
async def list_silences(
    engine: EngineDep, state: str | None = Query(None, pattern="^(pending|active|expired)$")
) -> list[SilencePublic]:
    """Silences, newest first, optionally only those in one state."""
    now = engine.clock.now()
    rows = await asyncio.to_thread(engine.store.find, Silence, limit=10_000)
    out = [_public(s, now) for s in rows]
    return [s for s in out if state is None or s.state == state]


@router.delete(
    "/{silence_id}", response_model=SilencePublic, responses={404: {"description": "no such silence"}}
)
async def expire_silence(
    silence_id: str,
    request: Request,
    engine: EngineDep,
    by: str | None = Query(None, max_length=256, description="who, while auth is off"),
    reason: str = Query("", max_length=4096, description="why it ends early, for the audit log"),
) -> SilencePublic:
    """Expire a silence now (it stays listed, as expired); who and why go to the audit log."""
    now = engine.clock.now()
    by = acting(request, by, "by", default="api")
    found = await asyncio.to_thread(engine.store.get, Silence, silence_id)
    if found is None:
        raise HTTPException(status_code=404, detail=f"no silence {silence_id!r}")
    if found.state(now) == "expired":
        return _public(found, now)
    expired = found.model_copy(update={"ends_at": now, "starts_at": min(found.starts_at, now), "at": now})
    audit = AuditEntry(
        at=now, actor=f"user:{by}", verb="expire_silence", subject=silence_id, detail={"reason": reason}
    )
    await asyncio.to_thread(engine.store.put_many, [expired, audit])
    return _public(expired, now)
