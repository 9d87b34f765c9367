"""Services: every value of the ``service`` label seen in stored series, with open incidents."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from opsmind.api.deps import EngineDep
from opsmind.engine import Engine
from opsmind.types import Incident, IncidentStatus

router = APIRouter(prefix="/api/v1/services", tags=["services"])
SERIES_SCAN_LIMIT = 1_000_000


class ServicePublic(BaseModel):
    name: str
    series: int
    metrics: list[str]
    open_incidents: int
    status: str


def _collect(engine: Engine) -> dict[str, ServicePublic]:
    by_service: dict[str, tuple[int, set[str]]] = {}
    for info in engine.store.series(None, SERIES_SCAN_LIMIT):
        svc = info.series.service
        if svc is None:
            continue
        count, names = by_service.get(svc, (0, set()))
        names.add(info.series.name)
        by_service[svc] = (count + 1, names)
    open_by_service: dict[str, int] = {}
    for inc in engine.store.find(Incident, status=IncidentStatus.OPEN.value, limit=100_000):
        if inc.service:
            open_by_service[inc.service] = open_by_service.get(inc.service, 0) + 1
    return {
        svc: ServicePublic(
            name=svc,
            series=count,
            metrics=sorted(names),
            open_incidents=open_by_service.get(svc, 0),
            status="incident" if open_by_service.get(svc) else "ok",
        )
        for svc, (count, names) in sorted(by_service.items())
    }


@router.get("", response_model=list[ServicePublic])
async def list_services(engine: EngineDep) -> list[ServicePublic]:
    return list((await asyncio.to_thread(_collect, engine)).values())


@router.get("/{name}", response_model=ServicePublic)
async def get_service(name: str, engine: EngineDep) -> ServicePublic:
    found = (await asyncio.to_thread(_collect, engine)).get(name)
    if found is None:
        raise HTTPException(404, f"no series carries service={name!r}")
    return found
