"""``opsmind users ...`` and ``opsmind tokens ...``: manage the API's users and tokens from the shell.

Both open the credential store of the configured storage (``--config``, or the ``OPSMIND_*``
environment): the SQLite database of ``storage.path``, or with ``storage.backend: postgres`` the schema
``storage.pg_schema`` of ``storage.dsn``; the same one the server reads, so they work while it runs. Each
change is written to the audit log of that store (the one the engine serves) as done by
``cli:<login name>``. A new token is printed once, alone on stdout,
so a script can capture it; everything else goes to stderr.
"""

from __future__ import annotations

import getpass
import sys
import time
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from opsmind.config import ConfigError, Settings, StorageSettings, load_settings
from opsmind.store.backends import open_credentials, open_store
from opsmind.store.credentials import CredentialError, CredentialStore
from opsmind.types import AuditEntry

users_app = typer.Typer(no_args_is_help=True, help="Users of the API and the dashboard (access control).")
tokens_app = typer.Typer(no_args_is_help=True, help="API tokens (access control).")
err = Console(stderr=True)

ConfigOption = typer.Option(None, "--config", "-c", help="YAML configuration file (for storage)")


class RoleChoice(StrEnum):
    viewer = "viewer"
    operator = "operator"
    admin = "admin"


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        err.print(f"[red]configuration error[/red]: {exc}")
        raise typer.Exit(2) from exc


def _store(config: Path | None) -> tuple[CredentialStore, StorageSettings]:
    """The configured credential store and the storage settings (for :func:`_audit`)."""
    storage = _settings(config).storage
    if storage.backend == "sqlite" and storage.path == ":memory:":
        err.print("[red]storage.path is :memory:[/red]: users and tokens would be lost at once")
        raise typer.Exit(2)
    try:
        return open_credentials(storage), storage
    except ConnectionError as exc:  # names the server, never the DSN's password
        err.print(f"[red]cannot open the users and tokens[/red]: {escape(str(exc))}")
        raise typer.Exit(2) from exc


def _audit(storage: StorageSettings, verb: str, subject: str, **detail: object) -> None:
    """Record the change in the store's audit log, where the engine (and its API) reads it."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        who = "unknown"
    store = open_store(storage)
    try:
        store.put(AuditEntry(at=time.time(), actor=f"cli:{who}", verb=verb, subject=subject, detail=detail))
    finally:
        store.close()


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat it: ") != first:
        err.print("[red]the passwords differ[/red]")
        raise typer.Exit(2)
    return first


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="the user's name"),
    role: RoleChoice = typer.Option(..., "--role", "-r", help="viewer, operator or admin"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="read the password from stdin"),
    config: Path | None = ConfigOption,
) -> None:
    """Add a user, or replace an existing user's password and role (their sessions end)."""
    password = _password(password_stdin)
    store, storage = _store(config)
    with store:
        existed = store.get_user(name) is not None
        now = time.time()
        try:
            store.set_user(name, password, role.value, now)
        except CredentialError as exc:
            err.print(f"[red]refused[/red]: {exc}")
            raise typer.Exit(2) from exc
        if existed:
            for t in store.tokens(owner=name, kind="session"):
                if t.state(now) == "active":
                    store.revoke_token(t.id, now)
    _audit(storage, "replace_user" if existed else "create_user", name, role=role.value)
    err.print(f"{'replaced' if existed else 'added'} user {name} ({role.value}) in {escape(store.where)}")


@users_app.command("list")
def users_list(config: Path | None = ConfigOption) -> None:
    """The users and their roles."""
    store, _ = _store(config)
    with store:
        for u in store.users():
            typer.echo(f"{u.name}\t{u.role.value}")


@users_app.command("delete")
def users_delete(name: str = typer.Argument(...), config: Path | None = ConfigOption) -> None:
    """Delete a user and revoke every token they own."""
    store, storage = _store(config)
    with store:
        if not store.delete_user(name, time.time()):
            err.print(f"[red]no user {name!r}[/red]")
            raise typer.Exit(2)
    _audit(storage, "delete_user", name)
    err.print(f"deleted user {name}")


@tokens_app.command("create")
def tokens_create(
    owner: str = typer.Option(..., "--owner", help="who the token acts as (a user or a service's name)"),
    role: RoleChoice = typer.Option(..., "--role", "-r", help="viewer, operator or admin"),
    ttl: float | None = typer.Option(None, "--ttl", help="seconds until it expires; default: never"),
    label: str = typer.Option("", "--label", help="what the token is for"),
    config: Path | None = ConfigOption,
) -> None:
    """Create an API token and print it (the only time it is shown)."""
    store, storage = _store(config)
    with store:
        try:
            secret, info = store.create_token(owner, role.value, time.time(), ttl_s=ttl, label=label)
        except CredentialError as exc:
            err.print(f"[red]refused[/red]: {exc}")
            raise typer.Exit(2) from exc
    _audit(storage, "create_token", info.id, owner=owner, role=role.value, expires_at=info.expires)
    err.print(f"token {info.id} for {owner} ({role.value}); it is shown only now:")
    typer.echo(secret)


@tokens_app.command("list")
def tokens_list(
    owner: str | None = typer.Option(None, "--owner"), config: Path | None = ConfigOption
) -> None:
    """Tokens (never their secrets): id, kind, owner, role, state."""
    store, _ = _store(config)
    now = time.time()
    with store:
        for t in store.tokens(owner=owner):
            typer.echo(f"{t.id}\t{t.kind}\t{t.owner}\t{t.role.value}\t{t.state(now)}\t{t.label}")


@tokens_app.command("revoke")
def tokens_revoke(token_id: str = typer.Argument(...), config: Path | None = ConfigOption) -> None:
    """Revoke a token now."""
    store, storage = _store(config)
    with store:
        info = store.revoke_token(token_id, time.time())
    if info is None:
        err.print(f"[red]no token {token_id!r}[/red]")
        raise typer.Exit(2)
    _audit(storage, "revoke_token", token_id, owner=info.owner, kind=info.kind)
    err.print(f"revoked {token_id}")
