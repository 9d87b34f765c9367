"""The server backend: :class:`PostgresStore` keeps samples, rollups and events in one PostgreSQL schema.

It behaves as :class:`~opsmind.store.sqlite.SqliteStore` does, answer for answer (the contract suite in
``tests/store`` runs against both), and adds what a server allows: several engines, or several processes
of one, may share a schema, each seeing the others' writes. It is assembled like the SQLite store:

- :mod:`opsmind.store.postgres_schema`: the tables, why they differ from SQLite's, the statements and the
  advisory locks that order writers;
- :mod:`opsmind.store.postgres_connections`: the connection pool, working in the store's schema;
- :mod:`opsmind.store.postgres_samples`: the :class:`~opsmind.store.protocols.SampleStore` half, with
  :mod:`opsmind.store.postgres_batch` turning a batch into rows for COPY;
- :mod:`opsmind.store.postgres_maintain`: rollups, compaction and retention;
- :mod:`opsmind.store.postgres_events`: the :class:`~opsmind.store.protocols.EventStore` half.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from opsmind.config import StorageSettings
from opsmind.store.composed import ComposedStore
from opsmind.store.postgres_connections import PostgresConnections
from opsmind.store.postgres_events import PostgresEvents
from opsmind.store.postgres_samples import PostgresSamples
from opsmind.store.protocols import (
    EventStore,
    SampleStore,
)


class PostgresStore(ComposedStore):
    """Samples (raw, 1-minute and 1-hour rollups, with retention) and events in the PostgreSQL schema
    ``schema`` (created with its tables if missing) of the database at ``dsn``: implements both
    :class:`SampleStore` and :class:`EventStore` by handing each call to its half.

    Safe to share between threads: each call borrows a connection from a pool. A server that cannot be
    reached raises :class:`ConnectionError` naming it, after at most ``connect_timeout`` (5 s unless the
    DSN sets it); a schema name that is not a plain identifier raises :class:`ValueError`.
    """

    def __init__(
        self,
        dsn: str,
        settings: StorageSettings | None = None,
        max_series: int = 1_000_000,
        schema: str = "opsmind",
    ) -> None:
        self._db = PostgresConnections(dsn, schema)
        self._samples: PostgresSamples = PostgresSamples(self._db, settings or StorageSettings(), max_series)
        super().__init__(self._samples, PostgresEvents(self._db))

    @property
    def schema(self) -> str:
        return self._db.schema

    def close(self) -> None:
        """Close every connection; closing twice is harmless."""
        self._db.close()

    def resolve(self, start: float) -> Literal["raw", "1m", "1h"]:
        """The finest resolution whose retention covers ``start``; see :meth:`PostgresSamples.resolve`."""
        return self._samples.resolve(start)


if TYPE_CHECKING:

    def _implements_protocols(store: PostgresStore) -> tuple[SampleStore, EventStore]:
        return store, store
