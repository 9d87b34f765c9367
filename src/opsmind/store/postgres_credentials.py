"""The credential tables (users and API tokens) in the PostgreSQL schema of the store.

:class:`~opsmind.store.credentials.CredentialStore` keeps all the logic; this adapter runs its statements
on a pool of :class:`~opsmind.store.postgres_connections.PostgresConnections`, so the credentials sit in
``auth_users`` and ``auth_tokens`` beside the store's tables and survive whatever happens to the engine's
own disk. Several engines or ``opsmind users`` / ``opsmind tokens`` commands may share them: each write is
one transaction, and the tables are created under the schema's advisory lock, as
:func:`~opsmind.store.postgres_schema.create_schema` creates the store's.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opsmind.store.credentials import Execute, tables_sql
from opsmind.store.postgres_connections import PostgresConnections
from opsmind.store.postgres_schema import lock_key

#: Logins and token checks are short single statements: a small pool serves them.
POOL_SIZE = 4


@functools.cache
def _translate(query: str) -> str:
    """A statement of the credential store in psycopg's placeholder style (its statements have no ``?``
    or ``%`` of their own)."""
    return query.replace("?", "%s")


class PostgresCredentialDb:
    """The credential tables in the schema ``schema`` (created with them if missing) of the database at
    ``dsn``. ConnectionError naming the server (never the password) when it cannot be reached."""

    def __init__(self, dsn: str, schema: str, pool_size: int = POOL_SIZE) -> None:
        self._db = PostgresConnections(dsn, schema, pool_size=pool_size)
        self.where = f"{self._db.where}, schema {self._db.schema}"
        try:
            with self._db.transaction() as conn:
                conn.execute("SELECT pg_advisory_xact_lock(%s::bigint)", [lock_key(schema, "schema")])
                conn.execute(tables_sql(key='text COLLATE "C"', blob="bytea", real="double precision"))
        except BaseException:
            self._db.close()
            raise

    def rows(self, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._db.connection() as conn:
            return conn.execute(_translate(query), params).fetchall()

    @contextmanager
    def write(self) -> Iterator[Execute]:
        with self._db.transaction() as conn:
            yield lambda query, params: conn.execute(_translate(query), params).rowcount

    def close(self) -> None:
        self._db.close()
