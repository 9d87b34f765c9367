"""``opsmind users`` and ``opsmind tokens`` with ``storage.backend: postgres``: the users and tokens, and the
audit entries of their changes, go to the PostgreSQL schema the engine reads, not to a local file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opsmind.cli.main import app
from opsmind.config import StorageSettings
from opsmind.store import PostgresStore
from opsmind.store.backends import open_credentials
from opsmind.store.credentials import Role
from opsmind.store.postgres_connections import describe
from opsmind.types import AuditEntry
from tests.store.conftest import drop_schema, need_postgres, new_schema

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, StorageSettings]]:
    """A configuration file choosing a fresh schema on the test server (dropped afterwards), run from an
    empty folder so that any SQLite file written by mistake (``storage.path``) would show."""
    dsn, schema = need_postgres(), new_schema()
    cfg = tmp_path / "opsmind.yaml"
    cfg.write_text(f"storage:\n  backend: postgres\n  dsn: {dsn}\n  pg_schema: {schema}\n")
    monkeypatch.chdir(tmp_path)
    try:
        yield cfg, StorageSettings(backend="postgres", dsn=dsn, pg_schema=schema)
    finally:
        drop_schema(dsn, schema)


def test_users_add_writes_the_user_and_its_audit_entry_to_postgres(
    pg_config: tuple[Path, StorageSettings], tmp_path: Path
) -> None:
    cfg, storage = pg_config
    run = CliRunner().invoke
    r = run(
        app, ["users", "add", "ana", "--role", "admin", "--password-stdin", "-c", str(cfg)], input="s3cret\n"
    )
    assert r.exit_code == 0, r.output
    said = " ".join(r.output.split())  # as one line: rich wraps at the terminal's width
    assert f"{describe(storage.dsn or '')}, schema {storage.pg_schema}" in said  # never a password
    r = run(app, ["tokens", "create", "--owner", "prometheus", "--role", "operator", "-c", str(cfg)])
    assert r.exit_code == 0, r.output
    token = r.stdout.strip().splitlines()[-1]
    with open_credentials(storage) as creds:
        user = creds.verify_password("ana", "s3cret")
        assert user is not None and user.role is Role.ADMIN
        info = creds.lookup_token(token)
        assert info is not None and (info.owner, info.role) == ("prometheus", Role.OPERATOR)
    assert "ana\tadmin" in run(app, ["users", "list", "-c", str(cfg)]).stdout
    assert run(app, ["tokens", "revoke", info.id, "-c", str(cfg)]).exit_code == 0
    assert run(app, ["users", "delete", "ana", "-c", str(cfg)]).exit_code == 0
    assert storage.dsn is not None
    with PostgresStore(storage.dsn, storage, schema=storage.pg_schema) as store:
        entries = store.find(AuditEntry)
    assert {(e.verb, e.subject) for e in entries} == {
        ("create_user", "ana"),
        ("create_token", info.id),
        ("revoke_token", info.id),
        ("delete_user", "ana"),
    }
    assert all(e.actor.startswith("cli:") for e in entries)
    assert list(tmp_path.iterdir()) == [cfg]  # no SQLite file: nothing was kept locally


def test_an_unreachable_server_is_named_without_the_password(tmp_path: Path) -> None:
    cfg = tmp_path / "opsmind.yaml"
    dsn = "postgresql://opsmind:hunter2@127.0.0.1:1/ops?connect_timeout=2"
    cfg.write_text(f"storage:\n  backend: postgres\n  dsn: '{dsn}'\n")
    r = CliRunner().invoke(app, ["users", "list", "-c", str(cfg)])
    said = " ".join(r.output.split())
    assert r.exit_code == 2 and "127.0.0.1:1/ops" in said and "hunter2" not in r.output


def test_config_check_on_postgres_ignores_storage_path(pg_config: tuple[Path, StorageSettings]) -> None:
    """With PostgreSQL nothing lives at storage.path any more (users and tokens included), so a path that
    could not be written (a read-only container folder) is no reason to refuse the configuration."""
    cfg, _ = pg_config
    cfg.write_text(cfg.read_text() + "  path: /proc/nope/x.db\n")
    r = CliRunner().invoke(app, ["config", "check", str(cfg)])
    assert r.exit_code == 0, r.output
