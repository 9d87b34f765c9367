"""``opsmind users`` and ``opsmind tokens`` write to the configured database, audited."""

from __future__ import annotations

import time
from pathlib import Path

from typer.testing import CliRunner

from opsmind.cli.main import app
from opsmind.store.credentials import CredentialStore, Role
from opsmind.store.sqlite import SqliteStore
from opsmind.types import AuditEntry


def config(tmp_path: Path) -> tuple[Path, Path]:
    db = tmp_path / "opsmind.db"
    cfg = tmp_path / "opsmind.yaml"
    cfg.write_text(f"storage:\n  path: {db}\n")
    return cfg, db


def test_users_and_tokens_from_the_shell(tmp_path: Path) -> None:
    cfg, db = config(tmp_path)
    run = CliRunner().invoke
    r = run(
        app, ["users", "add", "ana", "--role", "admin", "--password-stdin", "-c", str(cfg)], input="s3cret\n"
    )
    assert r.exit_code == 0, r.output
    r = run(
        app,
        ["tokens", "create", "--owner", "prometheus", "--role", "operator", "--ttl", "60", "-c", str(cfg)],
    )
    assert r.exit_code == 0, r.output
    token = r.stdout.strip().splitlines()[-1]
    with CredentialStore(str(db)) as store:
        user = store.verify_password("ana", "s3cret")
        assert user is not None and user.role is Role.ADMIN
        info = store.lookup_token(token)
        assert info is not None and (info.owner, info.role) == ("prometheus", Role.OPERATOR)
        assert info.expires is not None and info.expires <= time.time() + 60
    assert "ana\tadmin" in run(app, ["users", "list", "-c", str(cfg)]).stdout
    assert info.id in run(app, ["tokens", "list", "-c", str(cfg)]).stdout
    assert run(app, ["tokens", "revoke", info.id, "-c", str(cfg)]).exit_code == 0
    assert run(app, ["tokens", "revoke", "tok_nope", "-c", str(cfg)]).exit_code == 2
    with SqliteStore(str(db)) as events:
        verbs = {e.verb for e in events.find(AuditEntry)}
    assert {"create_user", "create_token", "revoke_token"} <= verbs
    assert b"s3cret" not in db.read_bytes()


def test_refusals(tmp_path: Path) -> None:
    cfg, _ = config(tmp_path)
    run = CliRunner().invoke
    r = run(app, ["users", "add", "ana", "--role", "boss", "--password-stdin", "-c", str(cfg)], input="x\n")
    assert r.exit_code == 2  # not a role
    r = run(app, ["users", "add", "ana", "--role", "viewer", "--password-stdin", "-c", str(cfg)], input="\n")
    assert r.exit_code == 2 and "password" in r.output
    r = run(app, ["tokens", "create", "--owner", "x", "--role", "viewer", "--ttl", "0", "-c", str(cfg)])
    assert r.exit_code == 2 and "ttl" in r.output
    assert run(app, ["users", "delete", "nobody", "-c", str(cfg)]).exit_code == 2
