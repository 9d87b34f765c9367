"""Users and API tokens (the access control of docs/DASHBOARD.md), kept where ``storage.backend`` keeps
everything else: the SQLite database of ``storage.path``, or the store's PostgreSQL schema
(``storage.pg_schema`` of ``storage.dsn``), so that on a server they outlive the engine's container.

:class:`CredentialStore` holds all the logic (hashing, validation, roles, expiry); a database adapter
(:class:`CredentialDb`) only runs its statements. They are written once, with ``?`` placeholders, in the
SQL both databases speak; :class:`SqliteCredentialDb` here runs them as they are, and
:class:`~opsmind.store.postgres_credentials.PostgresCredentialDb` (imported only with the postgres
backend, see :func:`opsmind.store.backends.open_credentials`) translates the placeholders.

Nothing secret is kept in clear: a password is stored as ``hashlib.scrypt`` of it with a per-user random
salt (the cost parameters beside it, so they can be raised later), a token as the SHA-256 of it. A token
is random (256 bits), so one round of SHA-256 is enough: there is nothing to guess. A token is shown once,
when it is made; afterwards only its public id names it.

Times are Unix seconds passed in by the caller (the engine's clock), so expiry follows a test's fake clock.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, Protocol

from opsmind.store.sqlite_connections import SqliteConnections


class Role(StrEnum):
    """What a principal may do; ordered: a higher role may do everything a lower one may."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what ``needed`` may."""
        return self.rank >= needed.rank


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}

TokenKind = Literal["session", "api"]
TOKEN_PREFIX = "om_"
NAME_MAX = 128
# scrypt cost: 2**14 * 8 * 128 bytes = 16 MiB of memory and ~50 ms per hash.
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_LEN = 2**14, 8, 1, 32

# The tables, in either database: ``key`` is a text column that sorts bytewise (SQLite's ``TEXT``;
# PostgreSQL's ``text COLLATE "C"``, not the server's locale), ``blob`` holds bytes, ``real`` a double.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS auth_users(name {key} PRIMARY KEY, role {key} NOT NULL, salt {blob} NOT NULL,
    hash {blob} NOT NULL, n INTEGER NOT NULL, r INTEGER NOT NULL, p INTEGER NOT NULL,
    created {real} NOT NULL);
CREATE TABLE IF NOT EXISTS auth_tokens(id {key} PRIMARY KEY, hash {key} NOT NULL UNIQUE, kind {key} NOT NULL,
    role {key} NOT NULL, owner {key} NOT NULL, created {real} NOT NULL, expires {real}, revoked {real},
    label {key} NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS auth_tokens_owner ON auth_tokens(owner);
"""


def tables_sql(key: str, blob: str, real: str) -> str:
    """The statements creating the credential tables if missing, with one database's column types."""
    return _SCHEMA.format(key=key, blob=blob, real=real)


_TOKEN_COLUMNS = "id, kind, role, owner, created, expires, revoked, label"


class CredentialError(ValueError):
    """A user or token request that cannot be carried out; the message says why."""


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    created: float

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "role": self.role.value, "created": self.created}


@dataclass(frozen=True)
class TokenInfo:
    """A token without its secret: what listing and checking it show."""

    id: str
    kind: TokenKind
    role: Role
    owner: str
    created: float
    expires: float | None
    revoked: float | None
    label: str

    def state(self, now: float) -> Literal["active", "expired", "revoked"]:
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and now >= self.expires:
            return "expired"
        return "active"

    def as_json(self, now: float) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind,
            "role": self.role.value,
            "owner": self.owner,
            "created": self.created,
            "expires_at": self.expires,
            "revoked_at": self.revoked,
            "label": self.label,
            "state": self.state(now),
        }


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _scrypt(password: str, salt: bytes, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * n * r * p, dklen=SCRYPT_LEN
    )


_DUMMY_SALT = secrets.token_bytes(16)


def check_name(name: str, new: bool = False) -> str:
    """A user name: 1-128 printable characters, no surrounding blanks; a ``new`` one (being created or
    changed) without ``/`` either, which no URL path segment (``/auth/users/{name}``) can carry, so
    such a user could never be changed or deleted."""
    if not name or len(name) > NAME_MAX or name != name.strip() or not name.isprintable():
        raise CredentialError(
            f"user name must be 1-{NAME_MAX} printable characters without surrounding blanks"
        )
    if new and "/" in name:
        raise CredentialError("user name must not contain '/' (it could not be named in a URL path)")
    return name


def _token_info(row: tuple[Any, ...]) -> TokenInfo:
    tid, kind, role, owner, created, expires, revoked, label = row
    return TokenInfo(
        id=str(tid),
        kind="session" if kind == "session" else "api",
        role=Role(str(role)),
        owner=str(owner),
        created=float(created),
        expires=None if expires is None else float(expires),
        revoked=None if revoked is None else float(revoked),
        label=str(label),
    )


#: Runs one statement (``?`` placeholders) in the current write transaction; returns the rows it changed.
Execute = Callable[[str, Sequence[object]], int]


class CredentialDb(Protocol):
    """What :class:`CredentialStore` needs of a database holding the credential tables (which the adapter
    creates if missing). Statements use ``?`` placeholders. Safe to share between threads."""

    #: The database in a message, e.g. a path or ``host:port/dbname, schema s`` (never a password).
    where: str

    def rows(self, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """The rows a read-only statement returns."""
        ...

    def write(self) -> AbstractContextManager[Execute]:
        """One write transaction: committed at the end, rolled back entirely on any error."""
        ...

    def close(self) -> None: ...


class SqliteCredentialDb:
    """The credential tables in the SQLite database at ``path`` (its own connections; ``":memory:"`` keeps
    them in a private in-memory database)."""

    def __init__(self, path: str) -> None:
        self.where = path
        self._db = SqliteConnections(path)
        with self._db.lock:
            self._db.writer.executescript(tables_sql(key="TEXT", blob="BLOB", real="REAL"))

    def rows(self, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._db.reader() as conn:
            return conn.execute(query, params).fetchall()

    @contextmanager
    def write(self) -> Iterator[Execute]:
        with self._db.lock, self._db.transaction() as conn:
            yield lambda query, params: conn.execute(query, params).rowcount

    def close(self) -> None:
        self._db.close()


class CredentialStore:
    """Users and tokens in ``db``: a :class:`CredentialDb`, or the path of a SQLite database (``":memory:"``
    keeps them in a private in-memory database). Open the configured one with
    :func:`opsmind.store.backends.open_credentials`. Safe to share between threads."""

    def __init__(self, db: str | CredentialDb) -> None:
        self._db: CredentialDb = SqliteCredentialDb(db) if isinstance(db, str) else db

    @property
    def where(self) -> str:
        """The database in a message (never a password)."""
        return self._db.where

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> CredentialStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _one(self, query: str, params: Sequence[object]) -> tuple[Any, ...] | None:
        rows = self._db.rows(query, params)
        return rows[0] if rows else None

    # -- users -------------------------------------------------------------------------------------

    def set_user(self, name: str, password: str, role: Role | str, now: float) -> User:
        """Create the user or replace its password and role."""
        check_name(name, new=True)
        role = Role(role)
        if not password:
            raise CredentialError("password must not be empty")
        salt = secrets.token_bytes(16)
        digest = _scrypt(password, salt)
        with self._db.write() as execute:
            execute(
                "INSERT INTO auth_users(name, role, salt, hash, n, r, p, created) VALUES (?,?,?,?,?,?,?,?)"
                " ON CONFLICT(name) DO UPDATE SET role = excluded.role, salt = excluded.salt,"
                " hash = excluded.hash, n = excluded.n, r = excluded.r, p = excluded.p",
                (name, role.value, salt, digest, SCRYPT_N, SCRYPT_R, SCRYPT_P, now),
            )
        found = self.get_user(name)
        assert found is not None
        return found

    def get_user(self, name: str) -> User | None:
        row = self._one("SELECT name, role, created FROM auth_users WHERE name = ?", (name,))
        return None if row is None else User(str(row[0]), Role(row[1]), float(row[2]))

    def users(self) -> list[User]:
        rows = self._db.rows("SELECT name, role, created FROM auth_users ORDER BY name")
        return [User(str(n), Role(r), float(c)) for n, r, c in rows]

    def has_users(self) -> bool:
        return bool(self._db.rows("SELECT 1 FROM auth_users LIMIT 1"))

    def delete_user(self, name: str, now: float) -> bool:
        """Delete the user and revoke every token it owns; False when there was no such user."""
        with self._db.write() as execute:
            gone = execute("DELETE FROM auth_users WHERE name = ?", (name,))
            if gone:
                execute("UPDATE auth_tokens SET revoked = ? WHERE owner = ? AND revoked IS NULL", (now, name))
        return bool(gone)

    def verify_password(self, name: str, password: str) -> User | None:
        """The user when ``password`` is theirs, else None. Takes as long for an unknown user as for a
        wrong password, and compares digests in constant time."""
        row = self._one(
            "SELECT name, role, created, salt, hash, n, r, p FROM auth_users WHERE name = ?", (name,)
        )
        if row is None:
            hmac.compare_digest(_scrypt(password, _DUMMY_SALT), bytes(SCRYPT_LEN))
            return None
        uname, role, created, salt, digest, n, r, p = row
        if not hmac.compare_digest(_scrypt(password, bytes(salt), int(n), int(r), int(p)), bytes(digest)):
            return None
        return User(str(uname), Role(role), float(created))

    # -- tokens ------------------------------------------------------------------------------------

    def create_token(
        self,
        owner: str,
        role: Role | str,
        now: float,
        ttl_s: float | None = None,
        kind: TokenKind = "api",
        label: str = "",
    ) -> tuple[str, TokenInfo]:
        """A new random token for ``owner`` with ``role``: the secret (shown only now) and its info."""
        check_name(owner)
        role = Role(role)
        if ttl_s is not None and not ttl_s > 0:
            raise CredentialError("ttl must be a positive number of seconds")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        info = TokenInfo(
            id="tok_" + secrets.token_hex(8),
            kind=kind,
            role=role,
            owner=owner,
            created=now,
            expires=None if ttl_s is None else now + ttl_s,
            revoked=None,
            label=label,
        )
        with self._db.write() as execute:
            execute(
                "INSERT INTO auth_tokens(id, hash, kind, role, owner, created, expires, revoked, label)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (info.id, hash_token(secret), kind, role.value, owner, now, info.expires, None, label),
            )
        return secret, info

    def lookup_token(self, secret: str) -> TokenInfo | None:
        """The token whose secret this is (in any state), or None for a token never issued."""
        row = self._one(f"SELECT {_TOKEN_COLUMNS} FROM auth_tokens WHERE hash = ?", (hash_token(secret),))
        return None if row is None else _token_info(row)

    def get_token(self, token_id: str) -> TokenInfo | None:
        row = self._one(f"SELECT {_TOKEN_COLUMNS} FROM auth_tokens WHERE id = ?", (token_id,))
        return None if row is None else _token_info(row)

    def tokens(self, owner: str | None = None, kind: TokenKind | None = None) -> list[TokenInfo]:
        """Tokens, newest first, optionally of one owner or one kind."""
        where, params = [], []
        for column, value in (("owner", owner), ("kind", kind)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = f"SELECT {_TOKEN_COLUMNS} FROM auth_tokens"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [_token_info(r) for r in self._db.rows(sql + " ORDER BY created DESC, id", params)]

    def revoke_token(self, token_id: str, now: float) -> TokenInfo | None:
        """Revoke the token (revoking twice keeps the first time); None when there is no such token."""
        with self._db.write() as execute:
            execute("UPDATE auth_tokens SET revoked = ? WHERE id = ? AND revoked IS NULL", (now, token_id))
        return self.get_token(token_id)

    def purge_expired(self, before: float) -> int:
        """Forget session tokens that expired or were revoked before ``before``; returns how many."""
        with self._db.write() as execute:
            return execute(
                "DELETE FROM auth_tokens WHERE kind = 'session' AND (expires < ? OR revoked < ?)",
                (before, before),
            )
