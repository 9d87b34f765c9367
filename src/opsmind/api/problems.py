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
from starlette.routing import Match

from opsmind.ingest.errors import IngestError

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


def problem(
    status: int,
    detail: str,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install(app: FastAPI) -> None:
    """Register handlers so every error response of the app is a problem document."""

    @app.exception_handler(IngestError)
    async def _ingest(request: Request, exc: IngestError) -> JSONResponse:
        return problem(exc.status, exc.reason, request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # The exception's headers are part of the answer: Allow on a 405 (RFC 9110 requires it),
        # WWW-Authenticate on a 401.
        detail, headers = str(exc.detail), exc.headers
        if exc.status_code == 405:
            allow = _allowed_methods(request)
            headers = {**(headers or {}), "Allow": allow}
            detail = f"{request.method} is not allowed on {request.url.path}; allowed: {allow}"
        return problem(exc.status_code, detail, request.url.path, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"location": _location(e), "message": _message(e)} for e in exc.errors()]
        detail = "; ".join(f"{e['location']}: {e['message']}" for e in errors) or "invalid request"
        return problem(422, detail, request.url.path, errors=errors)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Our bug, not the client's: log it fully, answer without leaking internals.
        log.exception("unhandled error on %s", request.url.path)
        return problem(500, "internal error; see the server log", request.url.path)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at the request's path: Starlette's own Allow header names only the
    first route of the path, so GET and POST declared as two routes answered ``Allow: POST``. Each
    method is tried against the routes with the request's scope (``matches`` is the routes' public
    interface; FastAPI nests included routers, so their routes are not listed flat)."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


_NON_FINITE = frozenset({"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"})


_JSON_NAMES = {list: "an array", int: "a number", float: "a number", bool: "a boolean", type(None): "null"}


def _location(error: Mapping[str, Any]) -> str:
    loc = [str(p) for p in error.get("loc", ())]
    if error.get("type") == "json_invalid":
        return "body"  # FastAPI adds the character offset ("body.0"), which reads like a field
    return ".".join(loc)


def _message(error: Mapping[str, Any]) -> str:
    """Pydantic's message, except where it sends the client looking for the wrong mistake: a NaN or
    infinite number (reported as out of a bound, "less than or equal to 3600"), a body that is not JSON
    or not an object ("Input should be a valid dictionary")."""
    if error.get("type") == "json_invalid":
        why = (error.get("ctx") or {}).get("error", "")
        return f"not valid JSON ({why})" if why else "not valid JSON"
    given = error.get("input")
    if error.get("type") == "model_attributes_type" and tuple(error.get("loc", ())) == ("body",):
        if isinstance(given, str | bytes):  # FastAPI hands over the raw text of a body not sent as JSON
            return "expected a JSON object (send it with Content-Type: application/json)"
        return f"expected a JSON object, not {_JSON_NAMES.get(type(given), type(given).__name__)}"
    bound = str(error.get("type", "")).startswith(("less_than", "greater_than"))
    if (
        bound
        and (isinstance(given, float) and not math.isfinite(given))
        or (isinstance(given, str) and given.strip().lower() in _NON_FINITE)
    ):
        return f"must be a finite number, not {given}"
    return str(error.get("msg", ""))
