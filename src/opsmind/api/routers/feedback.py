"""Feedback: operators mark an incident as noise or actionable, and the noise classifier learns from it.

``POST /api/v1/incidents/{incident_id}/feedback`` stores a :class:`~opsmind.types.Feedback` with a
snapshot of the incident's features (``incidents/feedback.py``) and an audit entry, retrains the
engine's classifier on every stored verdict and answers with the feedback and the classifier's state
(examples per verdict, ready or not). ``GET /api/v1/feedback`` lists the verdicts, newest first.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from opsmind.api.auth import acting
from opsmind.api.deps import EngineDep
from opsmind.incidents.feedback import incident_features
from opsmind.types import AuditEntry, Feedback, Incident

router = APIRouter(prefix="/api/v1", tags=["feedback"])


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: Literal["noise", "actionable"]
    by: str | None = Field(None, min_length=1, max_length=256, description="required while auth is off")
    comment: str = Field("", max_length=4096)


class FeedbackStored(BaseModel):
    feedback: Feedback
    classifier: dict[str, Any]


@router.post(
    "/incidents/{incident_id}/feedback",
    response_model=FeedbackStored,
    status_code=201,
    responses={404: {"description": "no such incident"}, 422: {"description": "invalid"}},
)
async def give_feedback(
    incident_id: str, body: FeedbackCreate, request: Request, engine: EngineDep
) -> FeedbackStored:
    """Mark an incident as noise or actionable; the latest verdict on an incident is the one learned."""
    by = acting(request, body.by, "by")
    incident = await asyncio.to_thread(engine.store.get, Incident, incident_id)
    if incident is None:
        raise HTTPException(status_code=404, detail=f"no incident with id {incident_id!r}")
    now = engine.clock.now()
    feedback = Feedback(
        at=now,
        service=incident.service,
        incident_id=incident_id,
        verdict=body.verdict,
        by=by,
        comment=body.comment,
        features=incident_features(incident),
    )
    audit = AuditEntry(
        at=now,
        service=incident.service,
        actor=f"user:{by}",
        verb="feedback",
        subject=incident_id,
        detail={"verdict": body.verdict, "comment": body.comment, "feedback_id": feedback.id},
    )
    await asyncio.to_thread(engine.store.put_many, [feedback, audit])
    state = await asyncio.to_thread(engine.retrain_noise)
    return FeedbackStored(feedback=feedback, classifier=state)


@router.get("/feedback", response_model=list[Feedback])
async def list_feedback(
    engine: EngineDep,
    service: str | None = None,
    incident_id: str | None = None,
    limit: int = Query(100, ge=1, le=10_000),
) -> list[Feedback]:
    """Verdicts, newest first, optionally on one service's incidents or on one incident."""
    if incident_id is None:
        return await asyncio.to_thread(engine.store.find, Feedback, service=service, limit=limit)
    rows = await asyncio.to_thread(engine.store.find, Feedback, service=service, limit=1_000_000)
    return [f for f in rows if f.incident_id == incident_id][:limit]
