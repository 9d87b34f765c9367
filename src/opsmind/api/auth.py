"""Access control (docs/DASHBOARD.md, "Access control"): who is calling, and whether their role may.

One dependency, :func:`authorize`, is installed on the whole app by ``create_app``; it reads the bearer
token, resolves it to a :class:`Principal`, applies the policy of :func:`required_role` and leaves the
principal in ``request.state.principal``. Routes name who acted with :func:`actor` (or :func:`acting`,
where a body may still carry a ``who``). With ``api.auth.enabled`` off every request is the principal
``anonymous`` with role ``admin``.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from starlette.requests import HTTPConnection, Request

from opsmind.api import problems
from opsmind.engine import Engine
from opsmind.store.credentials import Role, TokenInfo

__all__ = [
    "ANONYMOUS",
    "AuthFailed",
    "Principal",
    "Role",
    "acting",
    "actor",
    "auth_enabled",
    "authorize",
    "current_principal",
    "install",
    "principal_from_token",
    "required_role",
]

AUTH_PREFIX = "/api/v1/auth"
ADMIN_PREFIXES = (f"{AUTH_PREFIX}/users", f"{AUTH_PREFIX}/tokens")
SERVICES_PREFIX = "/api/v1/services"
# (method, path) pairs anyone may call without a token; HEAD goes with GET.
OPEN_ROUTES = frozenset({("GET", "/api/v1/health"), ("GET", "/metrics"), ("POST", f"{AUTH_PREFIX}/login")})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_OWN_TOKEN = re.compile(rf"^{re.escape(AUTH_PREFIX)}/tokens/[^/]+$")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user's (or a token owner's) name and the role the token grants.
    ``token_id`` names the token used (None when auth is off)."""

    name: str
    role: Role
    token_id: str | None = None

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "role": self.role.value}


ANONYMOUS = Principal("anonymous", Role.ADMIN)


class AuthFailed(Exception):
    """401 (no valid token) or 403 (role too low), answered as a problem document."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def install(app: FastAPI) -> None:
    """Answer :class:`AuthFailed` as a problem document; a 401 says ``WWW-Authenticate: Bearer``."""

    @app.exception_handler(AuthFailed)
    async def _auth_failed(request: Request, exc: AuthFailed) -> JSONResponse:
        resp = problems.problem(exc.status, exc.reason, request.url.path)
        if exc.status == 401:
            resp.headers["WWW-Authenticate"] = 'Bearer realm="opsmind"'
        return resp


def _engine(app: Any) -> Engine:
    engine: Engine = app.state.engine
    return engine


def auth_enabled(app: Any) -> bool:
    """Whether the app behind ``app`` requires tokens (``api.auth.enabled``, or users exist)."""
    return bool(_engine(app).auth_enabled)


def is_open(method: str, path: str) -> bool:
    """Routes anyone may call without a token: health, metrics, login and the static page."""
    method = "GET" if method == "HEAD" else method
    if (method, path) in OPEN_ROUTES:
        return True
    return method == "GET" and (path == "/" or path == "/ui" or path.startswith("/ui/"))


def required_role(method: str, path: str) -> Role | None:
    """The role the policy needs for ``method`` on ``path``; None: open without a token.

    Reads need ``viewer``, everything else ``operator``; user and token management and the service
    registry's changes (``PUT``/``DELETE /api/v1/services/{name}``) need ``admin``,
    except what a user does to their own session and tokens (log out, list and revoke their own tokens),
    which the routes restrict to the caller's tokens."""
    method = method.upper()
    if is_open(method, path):
        return None
    if path == f"{AUTH_PREFIX}/logout" and method == "POST":
        return Role.VIEWER
    if any(path == p or path.startswith(p + "/") for p in ADMIN_PREFIXES):
        if path == f"{AUTH_PREFIX}/tokens" and method in READ_METHODS:
            return Role.VIEWER  # the route lists only the caller's own tokens unless they are admin
        if method == "DELETE" and _OWN_TOKEN.match(path):
            return Role.VIEWER  # the route refuses another's token unless the caller is admin
        return Role.ADMIN
    if path.startswith(SERVICES_PREFIX + "/") and method not in READ_METHODS:
        return Role.ADMIN  # registering a service makes OpsMind fetch its URL: configuration
    return Role.VIEWER if method in READ_METHODS else Role.OPERATOR


async def _check_token(app: Any, token: str) -> tuple[Principal | None, str]:
    """The token's principal, or None and why it is refused."""
    engine = _engine(app)
    info: TokenInfo | None = await asyncio.to_thread(engine.credentials.lookup_token, token)
    if info is None:
        return None, "invalid token"
    state = info.state(engine.clock.now())
    if state != "active":
        return None, f"token {state}"
    return Principal(info.owner, info.role, info.id), ""


async def principal_from_token(app: Any, token: str | None) -> Principal | None:
    """The principal a token stands for, or None when it is missing, unknown, expired or revoked.
    With auth off every caller is :data:`ANONYMOUS`. ``app`` is the FastAPI app (``websocket.app``)."""
    if not auth_enabled(app):
        return ANONYMOUS
    if not token:
        return None
    principal, _ = await _check_token(app, token)
    return principal


def bearer_token(conn: HTTPConnection) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None when there is none."""
    header = conn.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthFailed(401, "the Authorization header must be 'Bearer <token>'")
    return value.strip()


def route_path(conn: HTTPConnection) -> str:
    """The path the router matches on: the request's path without the app's ``root_path`` (as routing
    sees it, so the policy and the route always agree on which route this is)."""
    path: str = conn.scope["path"]
    root: str = conn.scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


async def authorize(conn: HTTPConnection) -> None:
    """The app-wide dependency: resolve the caller and apply :func:`required_role`.

    Sets ``request.state.principal``. A WebSocket is left to its route, which checks the token in its
    query string with :func:`principal_from_token` (a browser cannot set headers on one)."""
    if conn.scope["type"] != "http":
        return
    if not auth_enabled(conn.app):
        conn.state.principal = ANONYMOUS
        return
    method = conn.scope["method"]
    path = route_path(conn)
    needed = required_role(method, path)
    try:
        token = bearer_token(conn)
    except AuthFailed:
        if needed is not None:
            raise
        token = None  # an open route does not care about a malformed header (a probe's Basic auth)
    caller: Principal | None = None
    reason = "missing bearer token (Authorization: Bearer <token>; POST /api/v1/auth/login gives one)"
    if token is not None:
        caller, reason = await _check_token(conn.app, token)
    conn.state.principal = caller
    if needed is None:
        return
    if caller is None:
        raise AuthFailed(401, reason)
    if not caller.role.allows(needed):
        raise AuthFailed(
            403, f"{method} {path} needs the role {needed.value} ({caller.name} has {caller.role.value})"
        )


def current_principal(conn: HTTPConnection) -> Principal:
    """The caller, as :func:`authorize` resolved it (:data:`ANONYMOUS` with auth off)."""
    found = getattr(conn.state, "principal", None)
    if isinstance(found, Principal):
        return found
    if not auth_enabled(conn.app):
        return ANONYMOUS
    raise AuthFailed(401, "not signed in")


def actor(request: HTTPConnection) -> str:
    """The name routes record as who did something: the principal's name (``anonymous`` with auth off)."""
    found = getattr(request.state, "principal", None)
    return found.name if isinstance(found, Principal) else ANONYMOUS.name


def acting(request: HTTPConnection, given: str | None, field: str, default: str | None = None) -> str:
    """Who acted, for a route whose body (or query) may name them in ``field``: with auth on, always the
    principal's name (a given name is accepted and ignored); with auth off, the given name, else
    ``default``, else a 422 naming ``field`` (nobody is signed in to name instead)."""
    if auth_enabled(request.app):
        return actor(request)
    if given is not None and given.strip():
        return given
    if default is not None:
        return default
    raise HTTPException(422, f"{field}: required while api.auth is disabled (nobody is signed in)")
