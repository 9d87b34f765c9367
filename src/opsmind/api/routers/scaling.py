"""Scaling: the latest decision per scaled service, and operators' overrides (pin or pause, release).

``GET /api/v1/scaling`` lists each service in ``scale.services`` with its latest decision (replicas,
reasons, hourly cost, the action's outcome) and its override. ``POST /api/v1/scaling/{service}/override``
pins the service's replicas (``replicas``), bounds its automation (``min_replicas`` and/or
``max_replicas``: it keeps deciding within them), or pauses it (none of them) until ``DELETE``
releases it; both are audited (*by* is the signed-in principal when access control is on).
404: not a scaled service (or, for DELETE, no override); 422: a bad body
or replicas outside the service's bounds.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from opsmind.api.auth import acting
from opsmind.api.deps import EngineDep
from opsmind.engine.scaling import ScaleStage

router = APIRouter(prefix="/api/v1/scaling", tags=["scaling"])


class OverrideCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Strict: in lax mode true would pin 1 replica and "3" pass for 3; a count must be a JSON integer.
    replicas: int | None = Field(
        None,
        description="pin to this many replicas; null (with no bounds) pauses automation",
        ge=0,
        strict=True,
    )
    min_replicas: int | None = Field(
        None, ge=0, strict=True, description="automation keeps at least this many"
    )
    max_replicas: int | None = Field(
        None, ge=0, strict=True, description="automation keeps at most this many"
    )
    by: str | None = Field(None, min_length=1, max_length=256, description="required while auth is off")
    reason: str = Field("", max_length=4096)


def _stage(engine: EngineDep, service: str) -> ScaleStage:
    stage = engine.scaling
    if stage is None or service not in stage.settings.services:
        raise HTTPException(404, f"{service!r} is not a scaled service (scale.services)")
    return stage


@router.get("")
async def list_scaling(engine: EngineDep) -> list[dict[str, Any]]:
    """Every scaled service with its latest decision (null before the first) and override."""
    stage = engine.scaling
    if stage is None:
        return []
    return [
        {
            "service": s,
            "policy": cfg.policy,
            "actuator": cfg.actuator,
            "min_replicas": cfg.min_replicas,
            "max_replicas": cfg.max_replicas,
            "override": o.as_json() if (o := stage.overrides.get(s)) is not None else None,
            "decision": stage.decisions.get(s),
        }
        for s, cfg in stage.settings.services.items()
    ]


@router.post(
    "/{service}/override", responses={404: {"description": "not scaled"}, 422: {"description": "bad"}}
)
async def override(service: str, body: OverrideCreate, request: Request, engine: EngineDep) -> dict[str, Any]:
    """Pin the replicas (or pause automation) until released; answers with the decision it caused."""
    stage = _stage(engine, service)
    by = acting(request, body.by, "by")
    try:
        return await stage.override(
            service, body.replicas, by, body.reason, body.min_replicas, body.max_replicas
        )
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc


@router.delete("/{service}/override", responses={404: {"description": "no override"}})
async def release(
    service: str,
    request: Request,
    engine: EngineDep,
    by: str | None = Query(None, min_length=1, max_length=256, description="who, while auth is off"),
    reason: str = Query("", max_length=4096),
) -> dict[str, Any]:
    """Release the override; automation decides again at once."""
    stage = _stage(engine, service)
    if service not in stage.overrides:
        raise HTTPException(404, f"no override on {service!r}")
    return await stage.release(service, acting(request, by, "by", default="api"), reason)
