"""Overrides: a person's say over every automated operation (docs/DASHBOARD.md, "Overrides").

``GET /api/v1/overrides`` lists each automated operation with the routes that override it
(:data:`OVERRIDES`, a static list kept beside the table in docs/DASHBOARD.md; a test calls every route
it names). This router also carries the overrides of self-healing that the remediation router lacks:

- ``GET /api/v1/automation/services`` lists the services whose healing is paused (who, why, since when);
  ``PUT /api/v1/automation/services/{service}`` ``{"paused", "why"}`` pauses or resumes one: nothing
  starts on a paused service (the ``service_paused`` guard refuses, audited like every guard) and a
  running remediation sends no further step. Kept across restarts, like the automation mode. Pausing a
  service OpsMind does not know (no series, registration or open incident names it) is a 404, so a typo
  is not taken for a pause; resuming a paused one always works.
- ``POST /api/v1/remediations/{id}/rollback`` ``{"why"}`` undoes the steps an executing, verifying or
  succeeded remediation sent, with the rollback actions its runbook declares; it ends ``rolled_back``
  (``escalated`` when a rollback action fails). 404 unknown; 409 not possible now, naming the states
  from which it is.
- ``GET /api/v1/incidents/{id}/runbooks``: the incident's classification (kind, confidence, the
  alternatives) and the candidate runbooks ranked by the recommender, each with its explanation,
  whether it binds to the incident's fields and whether it was tried.
- ``POST /api/v1/incidents/{id}/runbooks/{name}/run`` ``{"why", "dry_run"?}`` runs the runbook a person
  chose, bound to the incident as the healer binds it, as a remediation requested by them: every guard
  but approval holds; a dry run is not held by ``one_at_a_time`` (it acts on nothing). 404 unknown
  incident or runbook; 409 a guard refused (its reason and name, and the id under which the refusal is
  audited: nothing is stored as a remediation, the person asking has the answer); 422 the runbook cannot
  be bound (the fields it lacks).

Who acted comes from :func:`opsmind.api.auth.acting`: the signed-in principal, or, with access control
off, the body's ``who``. Every route but ``/overrides`` answers 503 while ``heal.enabled`` is false.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StrictBool, StringConstraints

from opsmind.api import auth, problems
from opsmind.api.deps import EngineDep
from opsmind.engine import Engine
from opsmind.engine.healing import HealStage
from opsmind.heal.executor import RollbackRefused
from opsmind.heal.healer import RunbookNotBound
from opsmind.heal.state import InvalidTransition, Remediation
from opsmind.types import Incident, IncidentStatus

router = APIRouter(prefix="/api/v1", tags=["overrides"])

NonBlank = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4096)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
MAX_SERVICE_NAME = 256


@dataclass(frozen=True, slots=True)
class OverrideRoute:
    """One way a person overrides an automated operation: the route and what it does."""

    name: str
    method: str
    path: str
    effect: str


@dataclass(frozen=True, slots=True)
class AutomatedOperation:
    """Something OpsMind does on its own, and the routes that override it."""

    key: str
    operation: str
    overrides: tuple[OverrideRoute, ...]


OVERRIDES: tuple[AutomatedOperation, ...] = (
    AutomatedOperation(
        "remediation",
        "remediation proposed / run by the healer",
        (
            OverrideRoute(
                "approve",
                "POST",
                "/api/v1/remediations/{id}/approve",
                "a proposed remediation runs (the other guards still hold)",
            ),
            OverrideRoute(
                "reject", "POST", "/api/v1/remediations/{id}/reject", "a proposed remediation never runs"
            ),
            OverrideRoute(
                "rollback",
                "POST",
                "/api/v1/remediations/{id}/rollback",
                "the steps it sent are undone; it ends rolled_back",
            ),
        ),
    ),
    AutomatedOperation(
        "healing",
        "healing, globally",
        (
            OverrideRoute(
                "automation_mode",
                "PUT",
                "/api/v1/automation",
                "off refuses every remediation, dry_run only records, on acts; kept across restarts",
            ),
        ),
    ),
    AutomatedOperation(
        "healing_per_service",
        "healing, per service",
        (
            OverrideRoute(
                "pause_service",
                "PUT",
                "/api/v1/automation/services/{service}",
                "nothing starts on a paused service until resumed; kept across restarts",
            ),
        ),
    ),
    AutomatedOperation(
        "runbook_choice",
        "runbook choice",
        (
            OverrideRoute(
                "run_runbook",
                "POST",
                "/api/v1/incidents/{id}/runbooks/{name}/run",
                "the chosen runbook runs on the incident (every guard but approval holds)",
            ),
        ),
    ),
    AutomatedOperation(
        "scaling",
        "scaling decision",
        (
            OverrideRoute(
                "scale_override",
                "POST",
                "/api/v1/scaling/{service}/override",
                "replicas pinned, automation bounded to a min/max, or paused, until released",
            ),
            OverrideRoute(
                "scale_release",
                "DELETE",
                "/api/v1/scaling/{service}/override",
                "automation decides again at once",
            ),
        ),
    ),
    AutomatedOperation(
        "notification",
        "notification",
        (
            OverrideRoute(
                "silence", "POST", "/api/v1/silences", "matching notifications are muted until it ends"
            ),
            OverrideRoute("expire_silence", "DELETE", "/api/v1/silences/{id}", "the silence ends now"),
        ),
    ),
    AutomatedOperation(
        "incident_grouping",
        "incident grouping / noise model",
        (
            OverrideRoute(
                "incident_status",
                "POST",
                "/api/v1/incidents/{id}/status",
                "the incident is acknowledged, mitigated, resolved or reopened",
            ),
            OverrideRoute(
                "incident_feedback",
                "POST",
                "/api/v1/incidents/{id}/feedback",
                "the verdict (noise or actionable) is stored and the noise model retrains on it",
            ),
        ),
    ),
)
"""Every automated operation and its overrides: the table of docs/DASHBOARD.md as data."""


class PauseUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paused: StrictBool  # "yes" or 1 is a mistake to refuse, not a pause to guess
    why: NonBlank
    who: Name | None = None


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    why: NonBlank
    who: Name | None = None


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    why: NonBlank
    dry_run: StrictBool = False
    who: Name | None = None


def _stage(engine: EngineDep) -> HealStage:
    if engine.healing is None:
        raise HTTPException(503, "self-healing is disabled (heal.enabled is false)")
    return engine.healing


def _known(engine: Engine, service: str) -> bool:
    """Whether ``service`` is one GET /api/v1/services lists: a series carries it, it is registered, or
    an open incident names it (blocking: store reads)."""
    return bool(
        service in engine.registry.registered()
        or engine.store.series({"service": service}, 1)
        or engine.store.find(Incident, service=service, status=IncidentStatus.OPEN.value, limit=1)
    )


def _service_name(service: str) -> str:
    """The path's service, refused (422) when it cannot be one: a pause is kept under the exact name, so a
    padded ``" checkout "`` would answer 200 and leave ``checkout`` unpaused, and control characters or a
    name longer than any label kept would be stored (and kept across restarts) for nothing."""
    if (
        not service
        or service != service.strip()
        or len(service) > MAX_SERVICE_NAME
        or any(ord(c) < 32 or ord(c) == 127 for c in service)
    ):
        raise HTTPException(
            422,
            f"service: {service[:64]!r} is not a service name (1-{MAX_SERVICE_NAME} characters, "
            "no control characters, no leading or trailing spaces)",
        )
    return service


def _public(rem: Remediation) -> dict[str, Any]:
    return {**rem.model_dump(mode="json"), "finished": rem.finished}


@router.get("/overrides")
async def list_overrides() -> list[dict[str, Any]]:
    """Every automated operation with the routes a person overrides it through."""
    return [asdict(op) for op in OVERRIDES]


@router.get("/automation/services", responses={503: {"description": "healing disabled"}})
async def list_paused(engine: EngineDep) -> list[dict[str, Any]]:
    """The services whose healing is paused, with who paused them, why and since when; a service not
    listed is not paused."""
    stage = _stage(engine)
    return [{"service": s, "paused": True, **p.as_json()} for s, p in sorted(stage.paused.items())]


@router.put(
    "/automation/services/{service:label}",
    responses={
        404: {"description": "pausing a service OpsMind does not know"},
        422: {"description": "bad body"},
        503: {"description": "healing disabled"},
    },
)
async def put_paused(service: str, body: PauseUpdate, request: Request, engine: EngineDep) -> dict[str, Any]:
    """Pause (``paused: true``) or resume healing on one service; audited, and kept across restarts."""
    stage = _stage(engine)
    service = _service_name(service)
    who = auth.acting(request, body.who, "who")
    # Resuming what is paused always works (its series may be gone since); a pause must name a service
    # OpsMind knows, or a typo ("personalisation") would answer 200 while the real one goes on healing.
    if body.paused and service not in stage.paused and not await asyncio.to_thread(_known, engine, service):
        raise HTTPException(
            404,
            f"no series carries service={service!r}, no service of that name is registered and no open "
            "incident names it (GET /api/v1/services lists the services OpsMind knows)",
        )
    try:
        return await stage.set_paused(service, body.paused, who, body.why)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc


@router.post(
    "/remediations/{remediation_id}/rollback",
    response_model=None,
    responses={
        404: {"description": "unknown remediation"},
        409: {"description": "not in a state to roll back"},
        422: {"description": "why missing"},
        503: {"description": "healing disabled"},
    },
)
async def rollback(
    remediation_id: str, body: Reason, request: Request, engine: EngineDep
) -> dict[str, Any] | JSONResponse:
    """Undo the steps the remediation sent; it ends ``rolled_back`` (``escalated`` if a rollback
    action failed)."""
    stage = _stage(engine)
    who = auth.acting(request, body.who, "who")
    try:
        rem = await stage.roll_back(remediation_id, who, body.why)
    except KeyError as exc:
        raise HTTPException(404, f"no remediation {remediation_id}") from exc
    except RollbackRefused as exc:
        return problems.problem(409, str(exc), request.url.path, allowed=list(exc.allowed))
    except InvalidTransition as exc:
        raise HTTPException(409, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    return _public(rem)


@router.get(
    "/incidents/{incident_id}/runbooks",
    responses={404: {"description": "unknown incident"}, 503: {"description": "healing disabled"}},
)
async def incident_runbooks(incident_id: str, engine: EngineDep) -> dict[str, Any]:
    """The incident's classification (with confidence), the service a runbook would act on (its ranked
    root cause) and its candidate runbooks, best first per kind, each with the recommender's explanation."""
    stage = _stage(engine)
    try:
        prediction, options, service = await stage.advise(incident_id)
    except LookupError as exc:
        raise HTTPException(404, f"no incident {incident_id}") from exc
    return {
        "incident_id": incident_id,
        "service": service,
        "classification": {
            "kind": prediction.kind,
            "confidence": prediction.confidence,
            "alternatives": [{"kind": k, "p": p} for k, p in prediction.alternatives],
            "reason": prediction.reason,
        },
        "runbooks": [o.as_json() for o in options],
    }


@router.post(
    "/incidents/{incident_id}/runbooks/{name}/run",
    response_model=None,
    responses={
        404: {"description": "unknown incident or runbook"},
        409: {"description": "a guard refused"},
        422: {"description": "the runbook cannot be bound, or a bad body"},
        503: {"description": "healing disabled"},
    },
)
async def run_runbook(
    incident_id: str, name: str, body: RunRequest, request: Request, engine: EngineDep
) -> dict[str, Any] | JSONResponse:
    """Run a runbook of the person's choice on the incident; it starts at once if the guards allow."""
    stage = _stage(engine)
    who = auth.acting(request, body.who, "who")
    path = request.url.path
    try:
        outcome = await stage.run_runbook(incident_id, name, who, body.why, body.dry_run)
    except LookupError as exc:  # KeyError (runbook) is a LookupError too
        what = f"no runbook {name!r}" if isinstance(exc, KeyError) else f"no incident {incident_id}"
        raise HTTPException(404, what) from exc
    except RunbookNotBound as exc:
        return problems.problem(422, str(exc), path, fields=list(exc.missing))
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    rem = outcome.remediation
    if outcome.event == "refused":  # the executor's reason reads "refused by <guard>: <why>"
        guard = outcome.reason.removeprefix("refused by ").partition(":")[0]
        return problems.problem(409, outcome.reason, path, remediation_id=rem.id, guard=guard)
    return {**_public(rem), "outcome": outcome.event, "reason": outcome.reason}
