"""The connections of one PostgreSQL store: a pool whose connections all work in the store's schema.

PostgreSQL runs transactions from many connections at once, so unlike SQLite there is no writer lock in
this process: each call borrows its own connection from a :class:`psycopg_pool.ConnectionPool` (the engine
calls the store from several worker threads) and what must not interleave is ordered by the server's
advisory locks (see :mod:`opsmind.store.postgres_schema`), which also hold between processes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import Connection, sql
from psycopg.abc import Params
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool, PoolTimeout

from opsmind.store.postgres_schema import create_schema, lock_key, validate_schema

#: Seconds to wait for the server when connecting, unless the DSN says otherwise: an unreachable server
#: fails the store's construction instead of hanging it.
CONNECT_TIMEOUT_S = 5
POOL_SIZE = 8
#: Seconds a call waits for a free pooled connection (or for a reconnection) before giving up.
POOL_TIMEOUT_S = 30.0


def describe(dsn: str) -> str:
    """``host:port/dbname`` of a DSN, for error messages (never the password)."""
    params = conninfo_to_dict(dsn)
    host = params.get("host") or params.get("hostaddr") or "the default socket"
    return f"{host}:{params.get('port') or 5432}/{params.get('dbname') or params.get('user') or ''}"


def scalar(conn: Connection[TupleRow], query: str, params: Params | None = None) -> Any:
    """The first column of the one row that ``query`` returns."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise RuntimeError(f"expected a row from {query!r}")
    return row[0]


class PostgresConnections:
    """The pool of one store. Creating it creates the schema and its tables if missing; a server that
    cannot be reached raises :class:`ConnectionError` naming it, within ``connect_timeout``."""

    def __init__(self, dsn: str, schema: str, pool_size: int = POOL_SIZE) -> None:
        self.schema = validate_schema(schema)
        self.where = describe(dsn)
        if "connect_timeout" not in conninfo_to_dict(dsn):
            dsn = make_conninfo(dsn, connect_timeout=CONNECT_TIMEOUT_S)
        #: Advisory lock keys: appends share the gate, maintenance takes it alone (postgres_schema).
        self.gate = lock_key(schema, "gate")
        self.maintenance = lock_key(schema, "maintain")
        self.closed = False
        self._close_lock = threading.Lock()
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                create_schema(conn, schema)
        except psycopg.OperationalError as exc:
            raise ConnectionError(f"cannot connect to PostgreSQL at {self.where}: {exc}") from exc
        self._pool: ConnectionPool[Connection[TupleRow]] = ConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True},  # reads are single statements; writes open transactions
            configure=self._configure,
            timeout=POOL_TIMEOUT_S,
            name=f"opsmind-{schema}",
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S + 5)
        except PoolTimeout as exc:
            self._pool.close()
            raise ConnectionError(f"cannot connect to PostgreSQL at {self.where}: {exc}") from exc

    def _configure(self, conn: Connection[TupleRow]) -> None:
        """Prepare a new pooled connection: the store's schema, and commits that are durable when they
        return (the store's contract) even if the server defaults to ``synchronous_commit = off``."""
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        conn.execute(
            "SELECT set_config('synchronous_commit', 'on', false)"
            " WHERE current_setting('synchronous_commit') = 'off'"
        )

    @contextmanager
    def connection(self) -> Iterator[Connection[TupleRow]]:
        """A connection in autocommit mode, given back to the pool afterwards."""
        if self.closed:
            raise RuntimeError("store is closed")
        with self._pool.connection() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[Connection[TupleRow]]:
        """A connection inside one transaction, committed at the end and rolled back on any error."""
        with self.connection() as conn, conn.transaction():
            yield conn

    def close(self) -> None:
        """Close the pool; a connection still in use is closed when it is given back."""
        with self._close_lock:
            if self.closed:
                return
            self.closed = True
        self._pool.close()
