"""The :class:`~opsmind.store.protocols.EventStore` half of :class:`~opsmind.store.postgres.PostgresStore`:
records of every kind in the ``events`` table, one JSON body per record, as in the SQLite backend."""

from __future__ import annotations

from collections.abc import Sequence

from opsmind.store.event_query import find_query
from opsmind.store.postgres_connections import PostgresConnections
from opsmind.store.postgres_schema import GET_EVENT, PUT_EVENT
from opsmind.store.protocols import R
from opsmind.types import Record


class PostgresEvents:
    """Records keyed by kind and id in the schema of ``db``; ``at``, ``service`` and ``status`` are
    stored in indexed columns beside the body so that :meth:`find` can filter on them."""

    def __init__(self, db: PostgresConnections) -> None:
        self._db = db

    def put(self, record: Record) -> None:
        """Insert or replace the record with this kind and id in one transaction."""
        self.put_many([record])

    def put_many(self, records: Sequence[Record]) -> None:
        """Insert or replace many records in one transaction: all of them or none. The upserts run one
        after another (psycopg pipelines them), so of two records with the same id the later wins."""
        rows = [(r.kind, r.id, r.at, r.service, r.status_value, r.model_dump_json()) for r in records]
        if not rows:
            return
        with self._db.transaction() as conn, conn.cursor() as cur:
            cur.executemany(PUT_EVENT, rows)

    def get(self, cls: type[R], record_id: str) -> R | None:
        """The record of kind ``cls`` with this id, or None."""
        with self._db.connection() as conn:
            row = conn.execute(GET_EVENT, (cls.kind, record_id)).fetchone()
        return None if row is None else cls.model_validate_json(row[0])

    def find(
        self,
        cls: type[R],
        *,
        service: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        newest_first: bool = True,
    ) -> list[R]:
        """:meth:`EventStore.find`: ``since <= at <= until``, ties on ``at`` broken by id (bytewise, the
        column's collation being "C", as SQLite compares)."""
        query, params = find_query(
            cls.kind,
            service=service,
            status=status,
            since=since,
            until=until,
            newest_first=newest_first,
            mark="%s",
        )
        with self._db.connection() as conn:
            # A negative limit means none, as SQLite's LIMIT -1 does.
            rows = conn.execute(query, [*params, limit if limit >= 0 else None]).fetchall()
        return [cls.model_validate_json(body) for (body,) in rows]
