"""Remediations and the automation switch: what the healer did, and a person's approval or veto.

``GET /api/v1/remediations`` lists remediations (``state``, ``service`` filters), newest change first;
``GET /api/v1/remediations/{id}`` shows one with its transition log and audit entries.
``POST /api/v1/remediations/{id}/approve`` and ``/reject`` take ``{"who", "why"}`` (not blank: the audit
log must say who decided and why; with access control on, *who* is the signed-in principal and a given
``who`` is ignored); 404 for an unknown id, 409 when the remediation
is not awaiting approval. ``GET``/``PUT /api/v1/automation`` read and set the global switch
(``off | dry_run | on``), audited with who and why. Every route answers 503 while ``heal.enabled`` is
false.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, StringConstraints

from opsmind.api.auth import acting
from opsmind.api.deps import EngineDep
from opsmind.engine.healing import HealStage
from opsmind.heal.guards import AutomationMode
from opsmind.heal.state import InvalidTransition, Remediation, RemediationState, describe
from opsmind.types import AuditEntry

router = APIRouter(prefix="/api/v1", tags=["remediation"])

NonBlank = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4096)]
# A name, as every other route takes one (overrides, silences' createdBy, registrations' by): 256 at most.
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]


class Verdict(BaseModel):
    """A person's approval or rejection."""

    model_config = ConfigDict(extra="forbid")

    who: Name | None = None  # required only while auth is off; otherwise the principal's name
    why: NonBlank


class AutomationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["off", "dry_run", "on"]
    who: Name | None = None  # required only while auth is off; otherwise the principal's name
    why: NonBlank


def _stage(engine: EngineDep) -> HealStage:
    if engine.healing is None:
        raise HTTPException(503, "self-healing is disabled (heal.enabled is false)")
    return engine.healing


def _public(rem: Remediation) -> dict[str, Any]:
    return {**rem.model_dump(mode="json"), "finished": rem.finished}


INCIDENT_SCAN = 100_000  # newest remediations looked through for one incident's


@router.get("/remediations", responses={503: {"description": "healing disabled"}})
async def list_remediations(
    engine: EngineDep,
    state: RemediationState | None = None,
    service: str | None = Query(None, min_length=1),
    incident_id: str | None = Query(None, min_length=1, description="only those of this incident"),
    limit: int = Query(100, ge=1, le=1000),
) -> list[dict[str, Any]]:
    """Remediations, newest change first; ``state=proposed`` lists those awaiting approval. An
    incident's remediations may target any service in its reach (the ranked root cause, not only the
    incident's own service): ask for them by ``incident_id``."""
    _stage(engine)
    status = None if state is None else state.value
    if incident_id is None:
        found = engine.store.find(Remediation, service=service, status=status, limit=limit)
    else:
        every = engine.store.find(Remediation, service=service, status=status, limit=INCIDENT_SCAN)
        found = [r for r in every if r.incident_id == incident_id][:limit]
    return [_public(r) for r in found]


@router.get("/remediations/{remediation_id}", responses={404: {"description": "unknown"}})
async def get_remediation(remediation_id: str, engine: EngineDep) -> dict[str, Any]:
    """One remediation with its transition log (from the append-only records) and its audit entries."""
    stage = _stage(engine)
    log = stage.healer.executor.log
    rem = log.get(remediation_id)
    if rem is None:
        raise HTTPException(404, f"no remediation {remediation_id}")
    transitions = log.transitions(remediation_id)
    audits = engine.store.find(
        AuditEntry, service=rem.service, since=rem.created_at, limit=10_000, newest_first=False
    )
    return {
        **_public(rem),
        "transitions": [t.model_dump(mode="json") for t in transitions],
        "story": describe(transitions),
        "audit": [a.model_dump(mode="json") for a in audits if a.subject == remediation_id],
    }


async def _decide(
    request: Request, engine: EngineDep, remediation_id: str, body: Verdict, approve: bool
) -> dict[str, Any]:
    stage = _stage(engine)
    who = acting(request, body.who, "who")
    try:
        if approve:
            rem = await stage.approve(remediation_id, who, body.why)
        else:
            rem = await stage.reject(remediation_id, who, body.why)
    except KeyError as exc:
        raise HTTPException(404, f"no remediation {remediation_id}") from exc
    except InvalidTransition as exc:
        raise HTTPException(409, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    return _public(rem)


_DECIDE_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "unknown remediation"},
    409: {"description": "not awaiting approval"},
    422: {"description": "who or why missing"},
    503: {"description": "healing disabled"},
}


@router.post("/remediations/{remediation_id}/approve", responses=_DECIDE_RESPONSES)
async def approve(remediation_id: str, body: Verdict, request: Request, engine: EngineDep) -> dict[str, Any]:
    """Approve a proposed remediation; it starts at once, subject to the other guards."""
    return await _decide(request, engine, remediation_id, body, approve=True)


@router.post("/remediations/{remediation_id}/reject", responses=_DECIDE_RESPONSES)
async def reject(remediation_id: str, body: Verdict, request: Request, engine: EngineDep) -> dict[str, Any]:
    """Reject a proposed remediation (final)."""
    return await _decide(request, engine, remediation_id, body, approve=False)


def _automation(stage: HealStage) -> dict[str, Any]:
    s = stage.healer.guards.settings
    return {
        "mode": s.mode.value,
        "approval_above_risk": s.approval_above_risk,
        "cooldown_service_s": s.cooldown_service_s,
        "cooldown_runbook_s": s.cooldown_runbook_s,
        "rate_service": {"max_count": s.rate_service.max_count, "window_s": s.rate_service.window_s},
        "rate_global": {"max_count": s.rate_global.max_count, "window_s": s.rate_global.window_s},
        "blast_radius_pct": s.blast_radius_pct,
        "changed": stage.changed_by(),
    }


@router.get("/automation", responses={503: {"description": "healing disabled"}})
async def get_automation(engine: EngineDep) -> dict[str, Any]:
    """The switch and the guards' limits; ``changed`` says who set the mode last and why."""
    return _automation(_stage(engine))


@router.put("/automation", responses={422: {"description": "bad body"}, 503: {"description": "disabled"}})
async def put_automation(body: AutomationUpdate, request: Request, engine: EngineDep) -> dict[str, Any]:
    """Switch automation off, to dry run or on; audited, and kept across restarts."""
    stage = _stage(engine)
    await stage.set_mode(AutomationMode(body.mode), acting(request, body.who, "who"), body.why)
    return _automation(stage)
