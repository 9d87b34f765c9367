"""The :class:`~opsmind.store.protocols.EventStore` half of :class:`~opsmind.store.sqlite.SqliteStore`:
records of every kind in the ``events`` table, one JSON body per record."""

from __future__ import annotations

from collections.abc import Sequence

from opsmind.store.event_query import find_query
from opsmind.store.protocols import R
from opsmind.store.sqlite_connections import SqliteConnections
from opsmind.store.sqlite_schema import PUT_EVENT
from opsmind.types import Record


class SqliteEvents:
    """Records keyed by kind and id in the database of ``db``; ``at``, ``service`` and ``status`` are
    stored in indexed columns beside the body so that :meth:`find` can filter on them."""

    def __init__(self, db: SqliteConnections) -> None:
        self._db = db

    def put(self, record: Record) -> None:
        """Insert or replace the record with this kind and id in one transaction."""
        self.put_many([record])

    def put_many(self, records: Sequence[Record]) -> None:
        """Insert or replace many records in one transaction: all of them or none."""
        rows = [(r.kind, r.id, r.at, r.service, r.status_value, r.model_dump_json()) for r in records]
        with self._db.lock, self._db.transaction() as conn:
            conn.executemany(PUT_EVENT, rows)

    def get(self, cls: type[R], record_id: str) -> R | None:
        """The record of kind ``cls`` with this id, or None."""
        with self._db.reader() as conn:
            row = conn.execute(
                "SELECT body FROM events WHERE kind = ?1 AND id = ?2", (cls.kind, record_id)
            ).fetchone()
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
        """:meth:`EventStore.find`: ``since <= at <= until``, ties on ``at`` broken by id."""
        sql, params = find_query(
            cls.kind,
            service=service,
            status=status,
            since=since,
            until=until,
            newest_first=newest_first,
            mark="?",
        )
        with self._db.reader() as conn:
            rows = conn.execute(sql, [*params, limit]).fetchall()
        return [cls.model_validate_json(body) for (body,) in rows]
