"""Shared helpers of the store tests: the PostgreSQL server that the ``postgres`` tests use.

The server is ``OPSMIND_TEST_POSTGRES_DSN`` (by default ``postgresql://postgres@127.0.0.1:5432/test``).
Each test gets a schema of its own, dropped afterwards, so tests never see each other's data and can share
one database. A server that cannot be reached skips those tests on a developer's machine and fails them
where ``OPSMIND_REQUIRE_POSTGRES`` is set (CI), as ``OPSMIND_REQUIRE_PROMETHEUS`` does for Prometheus.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from opsmind.store.postgres_connections import describe

POSTGRES_DSN = os.environ.get("OPSMIND_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@functools.cache
def _unreachable() -> str | None:
    """Why the test server cannot be used, or None; asked once per run, not once per test."""
    try:
        with psycopg.connect(POSTGRES_DSN, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL is not reachable at {describe(POSTGRES_DSN)} (OPSMIND_TEST_POSTGRES_DSN): {exc}"


def need_postgres() -> str:
    """The test server's DSN; skipped when it cannot be reached, a failure where CI requires it."""
    reason = _unreachable()
    if reason is not None:
        if os.environ.get("OPSMIND_REQUIRE_POSTGRES"):
            pytest.fail(f"{reason}; a PostgreSQL server is required here (OPSMIND_REQUIRE_POSTGRES)")
        pytest.skip(reason)
    return POSTGRES_DSN


def new_schema() -> str:
    """A schema name no other test uses."""
    return f"t_{uuid.uuid4().hex}"


def drop_schema(dsn: str, schema: str) -> None:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    """``(dsn, schema)``: a fresh schema on the test server, dropped with everything in it afterwards."""
    dsn = need_postgres()
    schema = new_schema()
    yield dsn, schema
    drop_schema(dsn, schema)
