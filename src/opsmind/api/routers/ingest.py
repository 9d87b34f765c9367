"""Ingestion endpoints: Prometheus remote-write 1.0, the JSON push API and Alertmanager's webhook.

Each request is decoded and validated as a whole before anything is stored, then stored in one
transaction: a bad request is refused with a 4xx and leaves no trace; a good one is durable when the
response is sent.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from opsmind.api.body import read_capped
from opsmind.api.deps import EngineDep
from opsmind.ingest.alertmanager import parse
from opsmind.ingest.errors import IngestError
from opsmind.ingest.push import decode_push
from opsmind.ingest.remote_write import decode_remote_write

router = APIRouter(tags=["ingest"])


class IngestPublic(BaseModel):
    samples: int
    series: int


@router.post(
    "/api/v1/write",
    status_code=204,
    response_class=Response,
    responses={
        400: {"description": "malformed"},
        413: {"description": "too large"},
        415: {"description": "wrong encoding"},
    },
)
async def remote_write(request: Request, engine: EngineDep) -> Response:
    """Prometheus remote-write 1.0: snappy-compressed protobuf ``WriteRequest``."""
    limits = engine.settings.ingest
    try:
        body = await read_capped(request, limits.max_body_bytes)
        decoded = decode_remote_write(
            body,
            content_encoding=request.headers.get("content-encoding"),
            content_type=request.headers.get("content-type"),
            limits=limits,
        )
        await engine.ingest(decoded.series, "remote_write")
    except IngestError as exc:
        engine.reject("remote_write", exc.status)
        raise
    return Response(status_code=204)


@router.post(
    "/api/v1/ingest",
    response_model=IngestPublic,
    responses={400: {"description": "malformed"}, 413: {"description": "too large"}},
)
async def push(request: Request, engine: EngineDep) -> IngestPublic:
    """JSON push: ``{"samples": [{"metric", "labels", "timestamp", "value"}]}`` or the compact
    ``{"series": [{"metric", "labels", "timestamps", "values"}]}``; timestamps in Unix seconds."""
    limits = engine.settings.ingest
    try:
        body = await read_capped(request, limits.max_body_bytes)
        batch = decode_push(body, limits)
        stored = await engine.ingest(batch, "push")
    except IngestError as exc:
        engine.reject("push", exc.status)
        raise
    return IngestPublic(samples=stored, series=len(batch))


class AlertsAccepted(BaseModel):
    firing: int
    resolved: int


@router.post(
    "/api/v1/alerts/alertmanager",
    response_model=AlertsAccepted,
    responses={400: {"description": "not JSON"}, 422: {"description": "not an Alertmanager webhook"}},
)
async def alertmanager_webhook(request: Request, engine: EngineDep) -> AlertsAccepted:
    """Alertmanager's webhook (payload version 4; missing optional and unknown fields are fine): firing
    alerts enter the pipeline as anomalies and hold their incidents open while they keep being notified;
    resolved ones stop holding them (see ``opsmind.ingest.alertmanager``, ``opsmind.incidents.firing``)."""
    try:
        raw = await read_capped(request, engine.settings.ingest.max_body_bytes)
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise IngestError(f"body is not JSON: {exc}", status=400) from exc
        except RecursionError as exc:  # Python's parser recurses per level: a body of '[[[[...' ends here
            raise IngestError("body is not JSON this receiver reads: nested too deeply", status=400) from exc
        got = parse(body, engine.clock.now(), engine.settings.ingest.future_grace_s)
        await engine.ingest_alerts(got.firing, got.resolved, "alertmanager")
    except IngestError as exc:
        engine.reject("alertmanager", exc.status)
        raise
    return AlertsAccepted(firing=len(got.firing), resolved=got.resolved_total)
