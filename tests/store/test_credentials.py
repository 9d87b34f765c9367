"""The credential store: scrypt password hashes, SHA-256 token hashes, expiry and revocation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from opsmind.config import ConfigError, load_settings, read_users_file
from opsmind.engine import Engine
from opsmind.store.credentials import CredentialError, CredentialStore, Role, hash_token

NOW = 1_700_000_000.0
PASSWORD = "correct-horse-battery-staple"


def db_bytes(path: Path) -> bytes:
    """Every byte SQLite wrote for the database at ``path`` (the file and its WAL)."""
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_roles_are_ordered() -> None:
    assert Role.ADMIN.allows(Role.OPERATOR) and Role.OPERATOR.allows(Role.VIEWER)
    assert Role.VIEWER.allows(Role.VIEWER) and not Role.VIEWER.allows(Role.OPERATOR)
    assert not Role.OPERATOR.allows(Role.ADMIN)
    assert [r.value for r in sorted(Role, key=lambda r: r.rank)] == ["viewer", "operator", "admin"]


def test_passwords_and_tokens_are_never_stored_in_clear(tmp_path: Path) -> None:
    path = tmp_path / "opsmind.db"
    with CredentialStore(str(path)) as store:
        store.set_user("ana", PASSWORD, Role.OPERATOR, NOW)
        secret, info = store.create_token("ana", "viewer", NOW, ttl_s=60, label="ci")
        assert secret.startswith("om_") and len(secret) > 40
        raw = db_bytes(path)
        assert PASSWORD.encode() not in raw and secret.encode() not in raw
        assert hash_token(secret).encode() in raw  # only the digest is kept
        assert store.verify_password("ana", PASSWORD) is not None
    # The same password for two users gives two different hashes (per-user salt).
    with CredentialStore(str(path)) as store:
        store.set_user("bo", PASSWORD, Role.VIEWER, NOW)
        conn = store._db.writer
        hashes = {row[0] for row in conn.execute("SELECT hash FROM auth_users")}
        salts = {row[0] for row in conn.execute("SELECT salt FROM auth_users")}
        assert len(hashes) == 2 and len(salts) == 2


def test_verify_password(tmp_path: Path) -> None:
    with CredentialStore(str(tmp_path / "c.db")) as store:
        store.set_user("ana", PASSWORD, "admin", NOW)
        user = store.verify_password("ana", PASSWORD)
        assert user is not None and (user.name, user.role) == ("ana", Role.ADMIN)
        assert store.verify_password("ana", PASSWORD + "x") is None
        assert store.verify_password("nobody", PASSWORD) is None
        store.set_user("ana", "new password", "viewer", NOW + 5)  # replace: password and role
        assert store.verify_password("ana", PASSWORD) is None
        replaced = store.verify_password("ana", "new password")
        assert replaced is not None and replaced.role is Role.VIEWER and replaced.created == NOW


def test_token_states(tmp_path: Path) -> None:
    with CredentialStore(str(tmp_path / "c.db")) as store:
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
        assert store.purge_expired(NOW + 10) == 1 and store.get_token(info.id) is None
        assert store.get_token(bot.id) == bot


def test_deleting_a_user_revokes_their_tokens(tmp_path: Path) -> None:
    with CredentialStore(str(tmp_path / "c.db")) as store:
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
        (lambda s: s.set_user("ana", "", "viewer", NOW), "password"),
        (lambda s: s.create_token("ana", "viewer", NOW, ttl_s=0), "ttl"),
    ],
)
def test_bad_requests_are_refused(
    tmp_path: Path, call: Callable[[CredentialStore], object], reason: str
) -> None:
    with CredentialStore(str(tmp_path / "c.db")) as store:
        with pytest.raises(CredentialError, match=reason):
            call(store)
    with CredentialStore(str(tmp_path / "d.db")) as store, pytest.raises(ValueError):
        store.set_user("ana", "pw", "boss", NOW)


def test_users_file_is_hashed_into_the_database_and_turns_auth_on(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    users.write_text(f"ana: {{password: {PASSWORD}, role: admin}}\nbo: {{password: pw2, role: viewer}}\n")
    db = tmp_path / "opsmind.db"
    engine = Engine(load_settings(storage={"path": str(db)}, api={"auth": {"users_file": str(users)}}))
    try:
        assert engine.auth_enabled  # not set, and users exist
        assert [(u.name, u.role) for u in engine.credentials.users()] == [
            ("ana", Role.ADMIN),
            ("bo", Role.VIEWER),
        ]
        assert engine.credentials.verify_password("ana", PASSWORD) is not None
        assert PASSWORD.encode() not in db_bytes(db)
    finally:
        engine.store.close()
        engine.credentials.close()
    off = Engine(load_settings(storage={"path": str(db)}, api={"auth": {"enabled": False}}))
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
