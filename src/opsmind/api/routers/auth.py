"""Signing in and managing who may do what (docs/DASHBOARD.md, "Access control").

``POST /api/v1/auth/login`` trades a user name and password for a session token (``api.auth.session_ttl_s``);
``GET /api/v1/auth/me`` says who the token is; ``POST /api/v1/auth/logout`` revokes the session token used.
An admin lists, creates (or replaces) and deletes users (``/api/v1/auth/users``) and lists, creates and
revokes API tokens (``/api/v1/auth/tokens``; a token is shown once, when created). Anyone signed in may
list and revoke their own tokens. Every change is written to the audit log; no password or token is.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from opsmind.api.auth import ANONYMOUS, AuthFailed, Principal, Role, current_principal
from opsmind.api.deps import EngineDep
from opsmind.engine import Engine
from opsmind.store.credentials import NAME_MAX, CredentialError, TokenInfo, User, check_name
from opsmind.types import AuditEntry

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
log = logging.getLogger(__name__)

Name = Annotated[str, StringConstraints(min_length=1, max_length=NAME_MAX)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
RoleName = Literal["viewer", "operator", "admin"]
WRONG_LOGIN = "wrong user name or password"


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Name
    password: Password


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    password: Password
    role: RoleName


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owner: Name
    role: RoleName
    ttl_s: float | None = Field(None, gt=0, le=10 * 365 * 86400, description="seconds; null: no expiry")
    label: str = Field("", max_length=256, description="what the token is for")


async def _audit(engine: Engine, who: Principal, verb: str, subject: str, **detail: Any) -> None:
    entry = AuditEntry(
        at=engine.clock.now(), actor=f"user:{who.name}", verb=verb, subject=subject, detail=detail
    )
    await asyncio.to_thread(engine.store.put, entry)


def _unprocessable(exc: CredentialError) -> HTTPException:
    return HTTPException(422, str(exc))


@router.post("/login", responses={401: {"description": WRONG_LOGIN}, 422: {"description": "bad body"}})
async def login(body: Login, engine: EngineDep) -> dict[str, Any]:
    """A session token for a user name and password; 401 without saying which of the two was wrong."""
    creds = engine.credentials
    user = await asyncio.to_thread(creds.verify_password, body.username, body.password)
    if user is None:
        log.warning("failed login for user %r", body.username)
        raise AuthFailed(401, WRONG_LOGIN)
    ttl = engine.settings.api.auth.session_ttl_s
    token, info = await asyncio.to_thread(
        creds.create_token, user.name, user.role, engine.clock.now(), ttl, "session", "login"
    )
    await _audit(engine, Principal(user.name, user.role), "login", info.id, role=user.role.value)
    return {"token": token, "role": user.role.value, "name": user.name, "expires_at": info.expires}


@router.get("/me")
async def me(request: Request) -> dict[str, Any]:
    """Who this token is: ``{"name", "role"}`` (``anonymous``, ``admin`` while auth is off)."""
    return current_principal(request).as_json()


@router.post("/logout", responses={409: {"description": "not a session token"}})
async def logout(request: Request, engine: EngineDep) -> dict[str, Any]:
    """Revoke the session token this request carries (an API token is revoked with DELETE .../tokens)."""
    who = current_principal(request)
    if who.token_id is None:
        return {"revoked": None}
    info = await asyncio.to_thread(engine.credentials.get_token, who.token_id)
    if info is None or info.kind != "session":
        raise HTTPException(
            409, "not a session token; revoke an API token with DELETE /api/v1/auth/tokens/{id}"
        )
    await asyncio.to_thread(engine.credentials.revoke_token, who.token_id, engine.clock.now())
    await _audit(engine, who, "logout", who.token_id)
    return {"revoked": who.token_id}


# -- users (admin) ---------------------------------------------------------------------------------


@router.get("/users")
async def list_users(engine: EngineDep) -> list[dict[str, object]]:
    """Every user with their role (never a password)."""
    return [u.as_json() for u in await asyncio.to_thread(engine.credentials.users)]


def _admins_left(users: list[User], without: str) -> int:
    return sum(1 for u in users if u.role is Role.ADMIN and u.name != without)


@router.post(
    "/users",
    status_code=201,
    responses={200: {"description": "replaced"}, 409: {"description": "last admin"}},
)
async def put_user(
    body: UserCreate, request: Request, response: Response, engine: EngineDep
) -> dict[str, object]:
    """Create a user, or replace an existing one's password and role (200); a replaced user's sessions
    end. 409 when it would leave no admin."""
    who = current_principal(request)
    creds = engine.credentials
    try:
        check_name(body.name, new=True)
    except CredentialError as exc:
        raise _unprocessable(exc) from exc
    users = await asyncio.to_thread(creds.users)
    existing = next((u for u in users if u.name == body.name), None)
    if existing is not None and existing.role is Role.ADMIN and body.role != "admin":
        if _admins_left(users, body.name) == 0:
            raise HTTPException(409, f"{body.name!r} is the last admin; make another admin first")
    now = engine.clock.now()
    user = await asyncio.to_thread(creds.set_user, body.name, body.password, body.role, now)
    ended = []
    if existing is not None:
        response.status_code = 200
        for t in await asyncio.to_thread(creds.tokens, body.name, "session"):
            if t.state(now) == "active":
                await asyncio.to_thread(creds.revoke_token, t.id, now)
                ended.append(t.id)
    verb = "create_user" if existing is None else "replace_user"
    await _audit(engine, who, verb, body.name, role=body.role, sessions_ended=len(ended))
    return user.as_json()


@router.delete(
    "/users/{name}", responses={404: {"description": "no such user"}, 409: {"description": "last admin"}}
)
async def delete_user(name: str, request: Request, engine: EngineDep) -> dict[str, object]:
    """Delete a user and revoke every token they own; 409 for the last admin."""
    who = current_principal(request)
    creds = engine.credentials
    users = await asyncio.to_thread(creds.users)
    existing = next((u for u in users if u.name == name), None)
    if existing is None:
        raise HTTPException(404, f"no user {name!r}")
    if existing.role is Role.ADMIN and _admins_left(users, name) == 0:
        raise HTTPException(409, f"{name!r} is the last admin; make another admin first")
    await asyncio.to_thread(creds.delete_user, name, engine.clock.now())
    await _audit(engine, who, "delete_user", name, role=existing.role.value)
    return {"deleted": name}


# -- tokens ----------------------------------------------------------------------------------------


def _may_manage(who: Principal, info: TokenInfo | None) -> bool:
    return who.role is Role.ADMIN or (info is not None and info.owner == who.name and who is not ANONYMOUS)


@router.get("/tokens")
async def list_tokens(
    request: Request,
    engine: EngineDep,
    owner: str | None = Query(None, min_length=1, max_length=NAME_MAX),
    kind: Literal["session", "api"] | None = None,
) -> list[dict[str, object]]:
    """Tokens (never their secrets), newest first; anyone but an admin sees only their own."""
    who = current_principal(request)
    if who.role is not Role.ADMIN:
        if owner is not None and owner != who.name:
            raise AuthFailed(403, "listing another's tokens needs the role admin")
        owner = who.name
    now = engine.clock.now()
    return [t.as_json(now) for t in await asyncio.to_thread(engine.credentials.tokens, owner, kind)]


@router.post("/tokens", status_code=201, responses={422: {"description": "bad body"}})
async def create_token(body: TokenCreate, request: Request, engine: EngineDep) -> dict[str, object]:
    """A new API token; the answer's ``token`` is the only time it is shown."""
    who = current_principal(request)
    now = engine.clock.now()
    try:
        secret, info = await asyncio.to_thread(
            engine.credentials.create_token, body.owner, body.role, now, body.ttl_s, "api", body.label
        )
    except CredentialError as exc:
        raise _unprocessable(exc) from exc
    await _audit(
        engine, who, "create_token", info.id, owner=body.owner, role=body.role, expires_at=info.expires
    )
    return {"token": secret, **info.as_json(now)}


@router.delete(
    "/tokens/{token_id}", responses={403: {"description": "not yours"}, 404: {"description": "unknown"}}
)
async def revoke_token(token_id: str, request: Request, engine: EngineDep) -> dict[str, object]:
    """Revoke a token now (it stays listed, as revoked); only an admin may revoke another's."""
    who = current_principal(request)
    creds = engine.credentials
    info = await asyncio.to_thread(creds.get_token, token_id)
    if not _may_manage(who, info):
        raise AuthFailed(403, "revoking another's token needs the role admin")
    if info is None:
        raise HTTPException(404, f"no token {token_id!r}")
    now = engine.clock.now()
    revoked = await asyncio.to_thread(creds.revoke_token, token_id, now)
    assert revoked is not None
    if info.revoked is None:
        await _audit(engine, who, "revoke_token", token_id, owner=info.owner, kind=info.kind)
    return revoked.as_json(now)
