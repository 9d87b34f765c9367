"""The embedded backend: :class:`SqliteStore` keeps samples, rollups and events in one SQLite file.

The store is assembled from small parts, each in its own module:

- :mod:`opsmind.store.sqlite_schema`: the tables and why they are laid out so, the SQL statements, the
  pragmas, and how connections are opened;
- :mod:`opsmind.store.sqlite_connections`: the writer behind a lock, the pool of readers, transactions;
- :mod:`opsmind.store.sqlite_samples`: the :class:`~opsmind.store.protocols.SampleStore` half;
- :mod:`opsmind.store.sqlite_events`: the :class:`~opsmind.store.protocols.EventStore` half.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from opsmind.config import StorageSettings
from opsmind.store.composed import ComposedStore
from opsmind.store.protocols import (
    EventStore,
    SampleStore,
)
from opsmind.store.sqlite_connections import SqliteConnections
from opsmind.store.sqlite_events import SqliteEvents
from opsmind.store.sqlite_samples import SqliteSamples


class SqliteStore(ComposedStore):
    """Samples (raw, 1-minute and 1-hour rollups, with retention) and events in one SQLite database:
    implements both :class:`SampleStore` and :class:`EventStore` by handing each call to its half.

    Safe to share between threads: writes go through one connection behind a lock; reads of a file
    database use a pool of separate connections, which WAL lets run while a write is in progress.
    ``":memory:"`` keeps everything in one connection (other connections would see another database).
    """

    def __init__(
        self, path: str, settings: StorageSettings | None = None, max_series: int = 1_000_000
    ) -> None:
        self._db = SqliteConnections(path)
        self._samples: SqliteSamples = SqliteSamples(self._db, settings or StorageSettings(), max_series)
        super().__init__(self._samples, SqliteEvents(self._db))

    def close(self) -> None:
        """Close every connection; closing twice is harmless."""
        self._db.close()

    def resolve(self, start: float) -> Literal["raw", "1m", "1h"]:
        """The finest resolution whose retention still covers ``start``; see :meth:`SqliteSamples.resolve`."""
        return self._samples.resolve(start)


if TYPE_CHECKING:

    def _implements_protocols(store: SqliteStore) -> tuple[SampleStore, EventStore]:
        return store, store
