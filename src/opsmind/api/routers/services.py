"""Services: every value of the ``service`` label seen in stored series, with open incidents, the services
registered in the service registry (``opsmind.engine.registry``), with or without data yet, and those
only an open incident names (an Alertmanager alert about a service OpsMind has no series of).

``PUT /api/v1/services/{name}`` registers a service (or changes its registration): its type, owner and
metrics URL, which OpsMind scrapes from then on; ``DELETE`` deregisters it (the scrape stops, the data
stays). Both need ``admin``: a registration makes OpsMind fetch a URL, which is configuration. A bad
registration is refused with 422 and the reason; nothing is stored.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from opsmind.api.auth import acting
from opsmind.api.deps import EngineDep
from opsmind.engine import Engine
from opsmind.types import (
    SERVICE_NAME,
    Incident,
    IncidentStatus,
    InvalidSeriesError,
    Series,
    ServiceRegistration,
    ServiceType,
)

router = APIRouter(prefix="/api/v1/services", tags=["services"])
SERIES_SCAN_LIMIT = 1_000_000
RESERVED_LABELS = frozenset({"service", "instance"})
MAX_DEPENDENCIES = 64
MAX_LABEL_VALUE = 256  # a dependency is named by its series' service label, which may be any such value


class RegistrationPublic(BaseModel):
    type: str | None
    owner: str
    metrics_url: str | None
    scrape_interval_s: float
    labels: dict[str, str]
    depends_on: list[str]
    by: str
    at: float


class ScrapePublic(BaseModel):
    up: bool
    at: float
    series: int
    error: str | None


class ServicePublic(BaseModel):
    name: str
    series: int
    metrics: list[str]
    open_incidents: int
    status: str = Field(description="incident, ok, or no data yet (registered, nothing stored so far)")
    registration: RegistrationPublic | None = None
    scrape: ScrapePublic | None = Field(None, description="the latest scrape of a registered metrics URL")


class ServiceRegister(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: ServiceType | None = None
    owner: str = Field("", max_length=200)
    metrics_url: HttpUrl | None = Field(
        None, description="scraped every scrape_interval_s, as service=<name>"
    )
    scrape_interval_s: float = Field(15.0, ge=1.0, le=3600.0)
    labels: dict[str, str] = Field(default_factory=dict, max_length=32)
    depends_on: list[str] = Field(
        default_factory=list,
        max_length=MAX_DEPENDENCIES,
        description="the services it calls (their service label): edges of the call graph used for "
        "grouping, root causes, blast radius, remediation scope and inhibition while it is registered",
    )
    # Required while auth is off; with auth on the signed-in principal's name is recorded instead.
    by: str | None = Field(None, min_length=1, max_length=256)
    why: str = Field("", max_length=4096)


def _registration_public(reg: ServiceRegistration) -> RegistrationPublic:
    return RegistrationPublic(
        type=reg.service_type,
        owner=reg.owner,
        metrics_url=reg.metrics_url,
        scrape_interval_s=reg.scrape_interval_s,
        labels=dict(reg.labels),
        depends_on=list(reg.depends_on),
        by=reg.by,
        at=reg.at,
    )


def open_incidents_by_service(engine: Engine) -> dict[str, int]:
    """How many open incidents each service is filed under (blocking: a store read)."""
    out: dict[str, int] = {}
    for inc in engine.store.find(Incident, status=IncidentStatus.OPEN.value, limit=100_000):
        if inc.service:
            out[inc.service] = out.get(inc.service, 0) + 1
    return out


def _collect(engine: Engine) -> dict[str, ServicePublic]:
    by_service: dict[str, tuple[int, set[str]]] = {}
    for info in engine.store.series(None, SERIES_SCAN_LIMIT):
        svc = info.series.service
        if svc is None:
            continue
        count, names = by_service.get(svc, (0, set()))
        names.add(info.series.name)
        by_service[svc] = (count + 1, names)
    open_by_service = open_incidents_by_service(engine)
    registered = engine.registry.registered()
    out: dict[str, ServicePublic] = {}
    # A service known only from its open incidents (an Alertmanager alert about a service OpsMind has no
    # series of) is listed too: the incident counts here must add up to the incident list's.
    for svc in sorted({*by_service, *registered, *open_by_service}):
        count, names = by_service.get(svc, (0, set()))
        reg = registered.get(svc)
        scraped = engine.registry.scrape_status(reg) if reg is not None else None
        status = "incident" if open_by_service.get(svc) else ("ok" if count else "no data yet")
        out[svc] = ServicePublic(
            name=svc,
            series=count,
            metrics=sorted(names),
            open_incidents=open_by_service.get(svc, 0),
            status=status,
            registration=_registration_public(reg) if reg is not None else None,
            scrape=ScrapePublic(up=scraped.up, at=scraped.at, series=scraped.series, error=scraped.error)
            if scraped is not None
            else None,
        )
    return out


@router.get("", response_model=list[ServicePublic])
async def list_services(engine: EngineDep) -> list[ServicePublic]:
    """Every service: those whose series carry ``service=<name>``, those registered and those with open
    incidents (an external alert may name a service OpsMind has no series of)."""
    return list((await asyncio.to_thread(_collect, engine)).values())


@router.get("/{name:label}", response_model=ServicePublic)
async def get_service(name: str, engine: EngineDep) -> ServicePublic:
    found = (await asyncio.to_thread(_collect, engine)).get(name)
    if found is None:
        raise HTTPException(
            404, f"no series carries service={name!r} and no service of that name is registered"
        )
    return found


def _check_registration(name: str, body: ServiceRegister) -> None:
    """422 with the reason for what cannot be a registration."""
    if SERVICE_NAME.fullmatch(name) is None:
        raise HTTPException(
            422,
            f"service name {name[:80]!r}: 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
        )
    for i, callee in enumerate(body.depends_on):
        if callee == name:
            raise HTTPException(422, f"depends_on[{i}]: a service does not depend on itself")
        padded = callee != callee.strip()
        if not callee or padded or len(callee) > MAX_LABEL_VALUE or not callee.isprintable():
            raise HTTPException(
                422,
                f"depends_on[{i}]: {callee[:80]!r} is not a service name (1-{MAX_LABEL_VALUE} printable "
                "characters, no leading or trailing spaces)",
            )
    for key, value in body.labels.items():
        if key in RESERVED_LABELS:
            raise HTTPException(422, f"labels.{key}: set by OpsMind for a registered service's series")
        try:
            Series.of("up", {key: value})
        except InvalidSeriesError as exc:
            raise HTTPException(422, f"labels.{key[:80]}: {exc}") from None


@router.put(
    "/{name:label}",
    response_model=ServicePublic,
    responses={
        201: {"description": "registered"},
        409: {"description": "deregistered by a concurrent request"},
        422: {"description": "not a valid registration"},
    },
)
async def register_service(
    name: str, body: ServiceRegister, request: Request, response: Response, engine: EngineDep
) -> ServicePublic:
    """Register ``name`` (or change its registration); with a ``metrics_url`` it is scraped from now on."""
    _check_registration(name, body)
    by = acting(request, body.by, "by")
    reg = ServiceRegistration(
        id=name,
        at=engine.clock.now(),
        service=name,
        service_type=body.type,
        owner=body.owner,
        metrics_url=str(body.metrics_url) if body.metrics_url is not None else None,
        scrape_interval_s=body.scrape_interval_s,
        labels=body.labels,
        depends_on=tuple(dict.fromkeys(body.depends_on)),  # in order, each once
        by=by,
    )
    try:
        _, new = await engine.registry.register(reg, body.why)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    found = (await asyncio.to_thread(_collect, engine)).get(name)
    if found is None:  # a DELETE that came right after it removed it again, and nothing is stored for it
        raise HTTPException(409, f"service {name!r} was registered, then deregistered by another request")
    if new:
        response.status_code = 201
    return found


@router.delete(
    "/{name:label}", response_model=RegistrationPublic, responses={404: {"description": "not registered"}}
)
async def deregister_service(
    name: str, request: Request, engine: EngineDep, why: str = "", by: str | None = None
) -> RegistrationPublic:
    """Deregister ``name``: its scrape stops, its data stays; a service seen only in its series is not
    registered and cannot be removed this way (404)."""
    who = acting(request, by, "by")
    removed = await engine.registry.deregister(name, who, why)
    if removed is None:
        raise HTTPException(404, f"no service {name[:80]!r} is registered")
    return _registration_public(removed)
