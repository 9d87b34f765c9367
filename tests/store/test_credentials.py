"""The credential store: scrypt password hashes, SHA-256 token hashes, expiry and revocation, on both
backends (the SQLite file of ``storage.path``, the PostgreSQL schema of ``storage.pg_schema``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from opsmind.api.app import create_app
from opsmind.config import ConfigError, StorageSettings, load_settings, read_users_file
from opsmind.engine import Engine
from opsmind.store.backends import open_credentials
from opsmind.store.credentials import CredentialError, CredentialStore, Role, hash_token
from tests.store.conftest import drop_schema, need_postgres, new_schema

NOW = 1_700_000_000.0
PASSWORD = "correct-horse-battery-staple"


def db_bytes(path: Path) -> bytes:
    """Every byte SQLite wrote for the database at ``path`` (the file and its WAL)."""
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def pg_bytes(dsn: str, schema: str) -> bytes:
    """Every credential row in the PostgreSQL schema, as text (bytea columns in hex)."""
    query = sql.SQL(
        "SELECT t::text FROM {s}.auth_users AS t UNION ALL SELECT t::text FROM {s}.auth_tokens AS t"
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(query.format(s=sql.Identifier(schema))).fetchall()
    return "\n".join(str(row[0]) for row in rows).encode()


@dataclass
class Backend:
    name: str
    storage: dict[str, Any]  # the ``storage`` settings that choose this database
    stored: Callable[[], bytes]  # everything the database holds, to look for secrets in
    opened: list[CredentialStore]

    def open(self) -> CredentialStore:
        """A new credential store on the test's database (another process, or a restarted engine)."""
        store = open_credentials(StorageSettings(**self.storage))
        self.opened.append(store)
        return store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The credential database of one backend, empty: a fresh SQLite file, or a fresh PostgreSQL schema
    (dropped afterwards)."""
    if request.param == "sqlite":
        path = tmp_path / "opsmind.db"
        b = Backend("sqlite", {"path": str(path)}, lambda: db_bytes(path), [])
        yield b
        for store in b.opened:
            store.close()
        return
    dsn, schema = need_postgres(), new_schema()
    # path is where a SQLite file would go: nothing may be written there.
    storage = {"backend": "postgres", "dsn": dsn, "pg_schema": schema, "path": str(tmp_path / "no.db")}
    b = Backend("postgres", storage, lambda: pg_bytes(dsn, schema), [])
    try:
        yield b
    finally:
        for store in b.opened:
            store.close()
        drop_schema(dsn, schema)
    assert not list(tmp_path.glob("no.db*"))


def test_roles_are_ordered() -> None:
    assert Role.ADMIN.allows(Role.OPERATOR) and Role.OPERATOR.allows(Role.VIEWER)
    assert Role.VIEWER.allows(Role.VIEWER) and not Role.VIEWER.allows(Role.OPERATOR)
    assert not Role.OPERATOR.allows(Role.ADMIN)
    assert [r.value for r in sorted(Role, key=lambda r: r.rank)] == ["viewer", "operator", "admin"]


def test_passwords_and_tokens_are_never_stored_in_clear(backend: Backend) -> None:
    with backend.open() as store:
        store.set_user("ana", PASSWORD, Role.OPERATOR, NOW)
        secret, info = store.create_token("ana", "viewer", NOW, ttl_s=60, label="ci")
        assert secret.startswith("om_") and len(secret) > 40
        raw = backend.stored()
        for clear in (PASSWORD.encode(), secret.encode()):
            assert clear not in raw and clear.hex().encode() not in raw
        assert hash_token(secret).encode() in raw  # only the digest is kept
        assert store.verify_password("ana", PASSWORD) is not None
    # The same password for two users gives two different hashes (per-user salt).
    with backend.open() as store:
        store.set_user("bo", PASSWORD, Role.VIEWER, NOW)
        rows = store._db.rows("SELECT salt, hash FROM auth_users")
        assert len({bytes(salt) for salt, _ in rows}) == 2 and len({bytes(h) for _, h in rows}) == 2


def test_verify_password(backend: Backend) -> None:
    with backend.open() as store:
        store.set_user("ana", PASSWORD, "admin", NOW)
        user = store.verify_password("ana", PASSWORD)
        assert user is not None and (user.name, user.role, user.created) == ("ana", Role.ADMIN, NOW)
        assert store.verify_password("ana", PASSWORD + "x") is None
        assert store.verify_password("nobody", PASSWORD) is None
        store.set_user("ana", "new password", "viewer", NOW + 5)  # replace: password and role
        assert store.verify_password("ana", PASSWORD) is None
        replaced = store.verify_password("ana", "new password")
        assert replaced is not None and replaced.role is Role.VIEWER and replaced.created == NOW


def test_users_are_listed_by_name(backend: Backend) -> None:
    with backend.open() as store:
        assert not store.has_users() and store.users() == [] and store.get_user("ana") is None
        for name in ("bo", "Zoe", "ana", "a-b"):
            store.set_user(name, PASSWORD, "viewer", NOW)
        assert store.has_users()
        assert [u.name for u in store.users()] == ["Zoe", "a-b", "ana", "bo"]  # bytewise, as SQLite sorts
        assert store.get_user("bo") == store.users()[-1]


def test_token_states(backend: Backend) -> None:
    with backend.open() as store:
        secret, info = store.create_token("ana", Role.OPERATOR, NOW, ttl_s=100, kind="session")
        found = store.lookup_token(secret)
        assert found == info and found.state(NOW + 99) == "active" and found.state(NOW + 100) == "expired"
        assert store.lookup_token(secret + "x") is None
        forever, bot = store.create_token("bot", "viewer", NOW + 1)
        assert bot.expires is None and bot.state(NOW + 1e9) == "active"
        revoked = store.revoke_token(info.id, NOW + 1)
        assert revoked is not None and revoked.state(NOW + 2) == "revoked" and revoked.revoked == NOW + 1
        again = store.revoke_token(info.id, NOW + 50)
        assert again is not None and again.revoked == NOW + 1  # the first revocation stands
        assert store.revoke_token("tok_nope", NOW) is None
        assert [t.owner for t in store.tokens()] == ["bot", "ana"]  # newest first
        assert [t.id for t in store.tokens(owner="bot")] == [bot.id]
        assert [t.id for t in store.tokens(kind="session")] == [info.id]
        assert store.tokens(owner="bot", kind="session") == []
        assert store.purge_expired(NOW + 10) == 1 and store.get_token(info.id) is None
        assert store.get_token(bot.id) == bot


def test_deleting_a_user_revokes_their_tokens(backend: Backend) -> None:
    with backend.open() as store:
        store.set_user("ana", PASSWORD, "operator", NOW)
        secret, _ = store.create_token("ana", "operator", NOW)
        assert store.delete_user("ana", NOW + 1) and not store.delete_user("ana", NOW + 2)
        token = store.lookup_token(secret)
        assert store.get_user("ana") is None and token is not None and token.state(NOW + 3) == "revoked"


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        (lambda s: s.set_user(" ana", "pw", "viewer", NOW), "user name"),
        (lambda s: s.set_user("", "pw", "viewer", NOW), "user name"),
        (lambda s: s.set_user("a/b", "pw", "viewer", NOW), "'/'"),
        (lambda s: s.set_user("ana", "", "viewer", NOW), "password"),
        (lambda s: s.create_token("ana", "viewer", NOW, ttl_s=0), "ttl"),
    ],
)
def test_bad_requests_are_refused(
    backend: Backend, call: Callable[[CredentialStore], object], reason: str
) -> None:
    with backend.open() as store:
        with pytest.raises(CredentialError, match=reason):
            call(store)
        with pytest.raises(ValueError):
            store.set_user("ana", "pw", "boss", NOW)
        assert not store.has_users() and store.tokens() == []


def test_a_restarted_engine_keeps_users_and_tokens_and_refuses_dead_ones(backend: Backend) -> None:
    """What one engine (or ``opsmind users add``) stored, the next engine on the same storage serves:
    on PostgreSQL nothing of it is in the engine's own files, which a container loses at each restart."""
    settings = load_settings(storage=backend.storage, notify={"log": False}, api={"auth": {"enabled": True}})
    first = Engine(settings)
    try:
        now = time.time()
        first.credentials.set_user("ana", PASSWORD, "admin", now)
        api, _ = first.credentials.create_token("prometheus", "operator", now, label="remote write")
        expired, _ = first.credentials.create_token("ana", "admin", now - 100, ttl_s=10, kind="session")
        revoked, info = first.credentials.create_token("ci", "viewer", now)
        first.credentials.revoke_token(info.id, now)
    finally:
        first.store.close()
        first.credentials.close()
    second = Engine(settings)
    try:
        assert [u.name for u in second.credentials.users()] == ["ana"]
        client = TestClient(create_app(second))
        login = client.post("/api/v1/auth/login", json={"username": "ana", "password": PASSWORD})
        assert login.status_code == 200 and login.json()["role"] == "admin"
        bad = client.post("/api/v1/auth/login", json={"username": "ana", "password": "nope"})
        assert bad.status_code == 401
        me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {api}"})
        assert me.status_code == 200 and me.json() == {"name": "prometheus", "role": "operator"}
        for token, why in ((expired, "token expired"), (revoked, "token revoked"), (api + "x", "invalid")):
            refused = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
            assert refused.status_code == 401 and why in refused.text
    finally:
        second.store.close()
        second.credentials.close()


def test_two_stores_on_one_database_see_each_others_changes(backend: Backend) -> None:
    one, two = backend.open(), backend.open()
    one.set_user("ana", PASSWORD, "operator", NOW)
    secret, info = two.create_token("ana", "operator", NOW)
    assert two.verify_password("ana", PASSWORD) is not None and one.lookup_token(secret) == info
    assert two.delete_user("ana", NOW + 1)
    token = one.lookup_token(secret)
    assert one.get_user("ana") is None and token is not None and token.state(NOW + 1) == "revoked"
    one.close()
    two.close()


def test_users_file_is_hashed_into_the_database_and_turns_auth_on(backend: Backend, tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    users.write_text(f"ana: {{password: {PASSWORD}, role: admin}}\nbo: {{password: pw2, role: viewer}}\n")
    storage = backend.storage
    engine = Engine(load_settings(storage=storage, api={"auth": {"users_file": str(users)}}))
    try:
        assert engine.auth_enabled  # not set, and users exist
        assert [(u.name, u.role) for u in engine.credentials.users()] == [
            ("ana", Role.ADMIN),
            ("bo", Role.VIEWER),
        ]
        assert engine.credentials.verify_password("ana", PASSWORD) is not None
        assert PASSWORD.encode() not in backend.stored()
    finally:
        engine.store.close()
        engine.credentials.close()
    off = Engine(load_settings(storage=storage, api={"auth": {"enabled": False}}))
    assert not off.auth_enabled  # explicitly off wins over existing users
    off.store.close()
    off.credentials.close()
    fresh = Engine(load_settings(storage={"path": str(tmp_path / "other.db")}))
    assert not fresh.auth_enabled  # the default without users
    fresh.store.close()
    fresh.credentials.close()


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("ana: {password: x, role: boss}\n", "ana.role"),
        ("ana: {role: admin}\n", "ana.password"),
        ("ana: {password: x, role: admin, mail: a@b}\n", "ana.mail"),
        ("ana: 3\n", "ana"),
        ("- ana\n", "mapping"),
        ("ana: [\n", "not valid YAML"),
    ],
)
def test_a_bad_users_file_names_the_file_and_the_field(tmp_path: Path, text: str, field: str) -> None:
    users = tmp_path / "users.yaml"
    users.write_text(text)
    with pytest.raises(ConfigError) as err:
        read_users_file(users)
    assert str(users) in str(err.value) and field in str(err.value)
    with pytest.raises(ConfigError, match="cannot read"):
        read_users_file(tmp_path / "missing.yaml")
