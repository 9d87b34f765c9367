"""Errors as ``application/problem+json`` (RFC 9457): every 4xx says what was wrong and where."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from opsmind.ingest.errors import IngestError

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


def problem(status: int, detail: str, instance: str | None = None, **extra: Any) -> JSONResponse:
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def install(app: FastAPI) -> None:
    """Register handlers so every error response of the app is a problem document."""

    @app.exception_handler(IngestError)
    async def _ingest(request: Request, exc: IngestError) -> JSONResponse:
        return problem(exc.status, exc.reason, request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"location": ".".join(str(p) for p in e.get("loc", ())), "message": _message(e)}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['location']}: {e['message']}" for e in errors) or "invalid request"
        return problem(422, detail, request.url.path, errors=errors)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Our bug, not the client's: log it fully, answer without leaking internals.
        log.exception("unhandled error on %s", request.url.path)
        return problem(500, "internal error; see the server log", request.url.path)


_NON_FINITE = frozenset({"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"})


def _message(error: Mapping[str, Any]) -> str:
    """Pydantic's message, except for a NaN or infinite number: pydantic reports those as out of a bound
    ("less than or equal to 3600"), which sends the client looking for the wrong mistake."""
    given = error.get("input")
    bound = str(error.get("type", "")).startswith(("less_than", "greater_than"))
    if (
        bound
        and (isinstance(given, float) and not math.isfinite(given))
        or (isinstance(given, str) and given.strip().lower() in _NON_FINITE)
    ):
        return f"must be a finite number, not {given}"
    return str(error.get("msg", ""))
