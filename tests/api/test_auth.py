"""Access control over the app (docs/DASHBOARD.md, "Access control"): login, sessions, tokens, users, and
the role table checked on every route the app has, so a route added later is covered without a test edit.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from fastapi.testclient import TestClient

from opsmind.api.app import create_app
from opsmind.config import load_settings
from opsmind.engine import Engine
from opsmind.store.credentials import Role
from opsmind.types import AuditEntry, Silence

PASSWORDS = {"vera": "vera-pass-1", "otto": "otto-pass-2", "ada": "ada-pass-3"}
ROLES = {"vera": Role.VIEWER, "otto": Role.OPERATOR, "ada": Role.ADMIN}
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
# Open without a token (the contract): liveness, scraping, logging in, the static page.
OPEN = {("GET", "/api/v1/health"), ("GET", "/metrics"), ("POST", "/api/v1/auth/login"), ("GET", "/")}
ADMIN_ONLY = re.compile(r"^/api/v1/(auth/(users|tokens)(/|$)|services/)")
# Mutations any signed-in user may make on their own behalf (the routes refuse anything not theirs).
SELF_SERVICE = {("POST", "/api/v1/auth/logout")}
# Framework pages that are not APIRoutes (so not behind the dependency); they hold no data.
DOC_PATHS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


@dataclass
class Secured:
    app: FastAPI
    engine: Engine
    client: TestClient
    admin_token_id: str  # a token someone else owns, for the routes that act on one token

    def session(self, name: str) -> str:
        """A fresh session token for ``name`` (cheap: no password hashing), so a logout costs nothing."""
        secret, _ = self.engine.credentials.create_token(
            name, ROLES[name], self.engine.clock.now(), ttl_s=600, kind="session"
        )
        return secret


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Secured]:
    settings = load_settings(
        storage={"path": str(tmp_path / "opsmind.db")},
        notify={"log": False},
        api={"auth": {"enabled": True, "session_ttl_s": 3600}},
    )
    engine = Engine(settings)
    for name, password in PASSWORDS.items():
        engine.credentials.set_user(name, password, ROLES[name], engine.clock.now())
    _, info = engine.credentials.create_token("ada", Role.ADMIN, engine.clock.now(), label="target")
    app = create_app(engine)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Secured(app, engine, client, info.id)


def concrete(path: str, token_id: str) -> str:
    """A URL for a route path: every parameter filled in (a token id where a route acts on a token)."""
    if path.startswith("/api/v1/auth/tokens/"):
        return re.sub(r"\{[^}]+\}", token_id, path)
    return re.sub(r"\{[^}]+\}", "x", path)


def api_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, HEAD aside; fails on a kind of route the policy cannot see."""
    out = []
    for ctx in iter_route_contexts(app.routes):  # included routers, flattened, with their prefixes
        route, path = ctx.original_route, str(ctx.path)
        if isinstance(route, APIRoute):
            out.extend((m, path) for m in sorted((ctx.methods or set()) - {"HEAD"}))
        elif isinstance(route, APIWebSocketRoute):
            continue  # checks its token itself (query string); see tests of the live socket
        else:
            assert path in DOC_PATHS, f"{route!r} at {path} is not an APIRoute: the access policy misses it"
    return out


def is_policy_refusal(r: Any, status: int) -> bool:
    return bool(r.status_code == status and r.headers["content-type"] == "application/problem+json")


def test_the_role_table_holds_on_every_mutating_route(secured: Secured) -> None:
    routes = [(m, p) for m, p in api_routes(secured.app) if m in MUTATING]
    assert ("POST", "/api/v1/silences") in routes and ("POST", "/api/v1/auth/users") in routes
    assert len(routes) >= 15
    c = secured.client
    wrong: list[str] = []
    for method, path in routes:
        url = concrete(path, secured.admin_token_id)
        admin_only = ADMIN_ONLY.match(path) is not None

        def call(token: str | None, method: str = method, url: str = url) -> Any:
            headers = bearer(token) if token else {}
            return c.request(method, url, json={}, headers=headers)

        r = call(None)
        if (method, path) in OPEN:
            if r.status_code in (401, 403):
                wrong.append(f"{method} {path}: open, but {r.status_code} without a token")
        elif not (is_policy_refusal(r, 401) and r.headers.get("www-authenticate", "").startswith("Bearer")):
            wrong.append(f"{method} {path}: no token gave {r.status_code}, not 401 with WWW-Authenticate")
        for name in ("vera", "otto", "ada"):
            role = ROLES[name]
            r = call(secured.session(name))
            if (method, path) in OPEN or (method, path) in SELF_SERVICE:
                should_pass = True
            elif admin_only:
                should_pass = role is Role.ADMIN
            else:
                should_pass = role.allows(Role.OPERATOR)
            if should_pass and r.status_code in (401, 403):
                wrong.append(f"{method} {path} as {role}: {r.status_code} {r.text}")
            if not should_pass:
                needed = "admin" if admin_only else "operator"
                if not (is_policy_refusal(r, 403) and needed in r.json()["detail"]):
                    wrong.append(f"{method} {path} as {role}: {r.status_code}, not a 403 naming {needed}")
    assert not wrong, "\n".join(wrong)


def test_every_read_needs_a_token_and_a_viewer_may_read(secured: Secured) -> None:
    routes = [(m, p) for m, p in api_routes(secured.app) if m == "GET"]
    assert len(routes) >= 20
    assert ("GET", "/api/v1/incidents") in routes and ("GET", "/api/v1/auth/me") in routes
    c = secured.client
    viewer = secured.session("vera")
    wrong: list[str] = []
    for method, path in routes:
        url = concrete(path, secured.admin_token_id)
        r = c.get(url)
        is_open = (method, path) in OPEN or path.startswith("/ui/")
        if is_open and r.status_code in (401, 403):
            wrong.append(f"GET {path}: open, but {r.status_code}")
        if not is_open and not is_policy_refusal(r, 401):
            wrong.append(f"GET {path}: no token gave {r.status_code}, not 401")
        r = c.get(url, headers=bearer(viewer))
        if path.startswith("/api/v1/auth/users"):  # the one read only an admin may make
            if not (is_policy_refusal(r, 403) and "admin" in r.json()["detail"]):
                wrong.append(f"GET {path} as viewer: {r.status_code}, not a 403 naming admin")
            r = c.get(url, headers=bearer(secured.session("ada")))
        if r.status_code in (401, 403):
            wrong.append(f"GET {path}: {r.status_code} {r.text}")
    assert not wrong, "\n".join(wrong)


def test_bad_tokens_are_401_with_the_reason(secured: Secured) -> None:
    c, creds, now = secured.client, secured.engine.credentials, secured.engine.clock.now()
    expired, _ = creds.create_token("otto", "operator", now - 100, ttl_s=10)
    revoked, info = creds.create_token("otto", "operator", now)
    creds.revoke_token(info.id, now)
    for headers, reason in [
        ({}, "missing bearer token"),
        (bearer("om_never-issued"), "invalid token"),
        ({"Authorization": "Basic b3R0bzp4"}, "Bearer <token>"),
        (bearer(expired), "token expired"),
        (bearer(revoked), "token revoked"),
    ]:
        r = c.get("/api/v1/incidents", headers=headers)
        assert r.status_code == 401 and reason in r.json()["detail"], (headers, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.headers["content-type"] == "application/problem+json"
    # an open route ignores a header it does not need (a liveness probe's Basic auth, a stale token)
    for headers in ({"Authorization": "Basic b3R0bzp4"}, bearer(revoked)):
        assert c.get("/api/v1/health", headers=headers).status_code == 200


def test_login_me_logout(secured: Secured) -> None:
    c = secured.client
    before = time.time()
    r = c.post("/api/v1/auth/login", json={"username": "otto", "password": PASSWORDS["otto"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["name"], body["role"]) == ("otto", "operator")
    assert before + 3600 <= body["expires_at"] <= time.time() + 3600
    token = body["token"]
    assert c.get("/api/v1/auth/me", headers=bearer(token)).json() == {"name": "otto", "role": "operator"}
    mine = c.get("/api/v1/auth/tokens", headers=bearer(token)).json()
    assert [(t["owner"], t["kind"], t["state"]) for t in mine] == [("otto", "session", "active")]
    assert "token" not in mine[0]
    r = c.post("/api/v1/auth/logout", headers=bearer(token))
    assert r.status_code == 200 and r.json()["revoked"] == mine[0]["id"]
    r = c.get("/api/v1/auth/me", headers=bearer(token))
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    verbs = [(e.verb, e.actor) for e in secured.engine.store.find(AuditEntry, limit=100, newest_first=False)]
    assert ("login", "user:otto") in verbs and ("logout", "user:otto") in verbs


def test_a_wrong_login_does_not_say_which_part_was_wrong(secured: Secured) -> None:
    c = secured.client
    wrong_password = c.post("/api/v1/auth/login", json={"username": "otto", "password": "nope"})
    unknown_user = c.post("/api/v1/auth/login", json={"username": "nobody", "password": "nope"})
    for r in (wrong_password, unknown_user):
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert wrong_password.json()["detail"] == unknown_user.json()["detail"] == "wrong user name or password"
    r = c.post("/api/v1/auth/login", json={"username": "otto"})
    assert r.status_code == 422 and "password" in r.text
    # a logout with an API token is refused instead of revoking the automation's token
    api_token, _ = secured.engine.credentials.create_token("otto", "operator", secured.engine.clock.now())
    assert c.post("/api/v1/auth/logout", headers=bearer(api_token)).status_code == 409


def test_admin_manages_users(secured: Secured) -> None:
    c, admin = secured.client, bearer(secured.session("ada"))
    r = c.post(
        "/api/v1/auth/users", json={"name": "nina", "password": "pw-nina", "role": "viewer"}, headers=admin
    )
    assert r.status_code == 201 and r.json()["role"] == "viewer" and "password" not in r.text
    session = c.post("/api/v1/auth/login", json={"username": "nina", "password": "pw-nina"}).json()["token"]
    r = c.post(
        "/api/v1/auth/users", json={"name": "nina", "password": "pw-2", "role": "operator"}, headers=admin
    )
    assert r.status_code == 200 and r.json()["role"] == "operator"
    assert c.get("/api/v1/auth/me", headers=bearer(session)).status_code == 401  # replaced: sessions end
    assert (
        c.post("/api/v1/auth/login", json={"username": "nina", "password": "pw-2"}).json()["role"]
        == "operator"
    )
    names = [u["name"] for u in c.get("/api/v1/auth/users", headers=admin).json()]
    assert names == ["ada", "nina", "otto", "vera"]
    for bad, reason in [
        ({"name": "x", "password": "p", "role": "boss"}, "role"),
        ({"name": " x", "password": "p", "role": "viewer"}, "user name"),
        ({"name": "a/b", "password": "p", "role": "viewer"}, "must not contain '/'"),  # DELETE can't reach it
        ({"name": "x", "password": "", "role": "viewer"}, "password"),
        ({"name": "x", "role": "viewer"}, "password"),
        ({"name": "x", "password": "p", "role": "viewer", "extra": 1}, "extra"),
    ]:
        r = c.post("/api/v1/auth/users", json=bad, headers=admin)
        assert r.status_code == 422 and reason in r.text, (bad, r.text)
    assert c.delete("/api/v1/auth/users/nina", headers=admin).json() == {"deleted": "nina"}
    assert c.delete("/api/v1/auth/users/nina", headers=admin).status_code == 404
    # the last admin can be neither deleted nor demoted
    assert c.delete("/api/v1/auth/users/ada", headers=admin).status_code == 409
    demote = {"name": "ada", "password": "x", "role": "viewer"}
    assert c.post("/api/v1/auth/users", json=demote, headers=admin).status_code == 409
    verbs = {e.verb for e in secured.engine.store.find(AuditEntry, limit=100)}
    assert {"create_user", "replace_user", "delete_user"} <= verbs
    audit_text = "".join(e.model_dump_json() for e in secured.engine.store.find(AuditEntry, limit=100))
    assert "pw-nina" not in audit_text and "pw-2" not in audit_text


def test_tokens_are_shown_once_and_revoked_by_owner_or_admin(secured: Secured) -> None:
    c, admin = secured.client, bearer(secured.session("ada"))
    spec = {"owner": "otto", "role": "operator", "ttl_s": 600, "label": "ci"}
    r = c.post("/api/v1/auth/tokens", json=spec, headers=admin)
    assert r.status_code == 201, r.text
    created = r.json()
    token, tid = created["token"], created["id"]
    assert created["owner"] == "otto" and created["expires_at"] is not None
    assert c.get("/api/v1/auth/me", headers=bearer(token)).json() == {"name": "otto", "role": "operator"}
    listed = c.get("/api/v1/auth/tokens", headers=admin).json()
    assert tid in {t["id"] for t in listed} and token not in str(listed)
    assert all(t["owner"] == "otto" for t in c.get("/api/v1/auth/tokens", headers=bearer(token)).json())
    viewer = bearer(secured.session("vera"))
    assert c.get("/api/v1/auth/tokens", params={"owner": "otto"}, headers=viewer).status_code == 403
    assert c.delete(f"/api/v1/auth/tokens/{tid}", headers=viewer).status_code == 403  # not hers
    r = c.delete(f"/api/v1/auth/tokens/{tid}", headers=bearer(token))  # the owner revokes their own
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    assert c.get("/api/v1/auth/me", headers=bearer(token)).status_code == 401
    assert c.delete("/api/v1/auth/tokens/tok_nope", headers=admin).status_code == 404
    for bad, reason in [
        ({"owner": "x", "role": "root"}, "role"),
        ({"owner": "x", "role": "viewer", "ttl_s": -1}, "ttl_s"),
    ]:
        r = c.post("/api/v1/auth/tokens", json=bad, headers=admin)
        assert r.status_code == 422 and reason in r.text
    verbs = {e.verb for e in secured.engine.store.find(AuditEntry, limit=100)}
    assert {"create_token", "revoke_token"} <= verbs


def test_with_auth_on_the_principal_is_who_acted(secured: Secured) -> None:
    c = secured.client
    body = {
        "matchers": [{"name": "service", "value": "checkout"}],
        "endsAt": time.time() + 600,
        "createdBy": "mallory",  # accepted for compatibility, but not believed
    }
    r = c.post("/api/v1/silences", json=body, headers=bearer(secured.session("otto")))
    assert r.status_code == 201, r.text
    assert r.json()["createdBy"] == "otto"
    del body["createdBy"]  # and not needed
    assert c.post("/api/v1/silences", json=body, headers=bearer(secured.session("otto"))).status_code == 201
    sid = r.json()["id"]
    assert (
        c.delete(
            f"/api/v1/silences/{sid}", params={"by": "mallory"}, headers=bearer(secured.session("ada"))
        ).status_code
        == 200
    )
    stored = secured.engine.store.get(Silence, sid)
    assert stored is not None and stored.created_by == "otto"
    actors = {(e.verb, e.actor) for e in secured.engine.store.find(AuditEntry, limit=100)}
    assert ("silence", "user:otto") in actors and ("expire_silence", "user:ada") in actors
    assert not any("mallory" in a for _, a in actors)


def test_with_auth_off_everyone_is_anonymous_admin(tmp_path: Path) -> None:
    engine = Engine(load_settings(storage={"path": str(tmp_path / "o.db")}, notify={"log": False}))
    assert not engine.auth_enabled
    with TestClient(create_app(engine)) as c:
        assert c.get("/api/v1/auth/me").json() == {"name": "anonymous", "role": "admin"}
        assert c.get("/api/v1/incidents").status_code == 200
        body = {"matchers": [{"name": "service", "value": "a"}], "endsAt": time.time() + 600}
        r = c.post("/api/v1/silences", json=body)
        assert r.status_code == 422 and "createdBy" in r.text  # nobody signed in: who is required
        r = c.post("/api/v1/silences", json={**body, "createdBy": "ana"})
        assert r.status_code == 201 and r.json()["createdBy"] == "ana"
