"""The embedded backend: :class:`SqliteStore` keeps samples, rollups and events in one SQLite file.

The store is assembled from small parts, each in its own module:

- :mod:`opsmind.store.sqlite_schema`: the tables and why they are laid out so, the SQL statements, the
  pragmas, and how connections are opened;
- :mod:`opsmind.store.sqlite_connections`: the writer behind a lock, the pool of readers, transactions;
- :mod:`opsmind.store.sqlite_samples`: the :class:`~opsmind.store.protocols.SampleStore` half;
- :mod:`opsmind.store.sqlite_events`: the :class:`~opsmind.store.protocols.EventStore` half.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from opsmind.config import StorageSettings
from opsmind.store.protocols import (
    EventStore,
    MaintenanceReport,
    R,
    RangeResult,
    Resolution,
    SampleStore,
    SeriesInfo,
)
from opsmind.store.sqlite_connections import SqliteConnections
from opsmind.store.sqlite_events import SqliteEvents
from opsmind.store.sqlite_samples import SqliteSamples
from opsmind.types import Record, Series, SeriesSamples


class SqliteStore:
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
        self._samples = SqliteSamples(self._db, settings or StorageSettings(), max_series)
        self._events = SqliteEvents(self._db)

    def close(self) -> None:
        """Close every connection; closing twice is harmless."""
        self._db.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- SampleStore: see SqliteSamples --------------------------------------------------------------

    def append(self, batch: Sequence[SeriesSamples]) -> int:
        """Store every point of ``batch`` in one transaction; see :meth:`SqliteSamples.append`."""
        return self._samples.append(batch)

    def series_count(self) -> int:
        """The number of series stored."""
        return self._samples.series_count()

    def series(self, matchers: Mapping[str, str] | None = None, limit: int = 1000) -> list[SeriesInfo]:
        """Series whose labels equal every matcher; see :meth:`SqliteSamples.series`."""
        return self._samples.series(matchers, limit)

    def resolve(self, start: float) -> Literal["raw", "1m", "1h"]:
        """The finest resolution whose retention still covers ``start``; see :meth:`SqliteSamples.resolve`."""
        return self._samples.resolve(start)

    def query(self, series: Series, start: float, end: float, resolution: Resolution = "auto") -> RangeResult:
        """Points of ``series`` with ``start <= ts <= end``; see :meth:`SqliteSamples.query`."""
        return self._samples.query(series, start, end, resolution)

    def maintain(self, now: float) -> MaintenanceReport:
        """Roll up, compact and apply retention; see :meth:`SqliteSamples.maintain`."""
        return self._samples.maintain(now)

    # -- EventStore: see SqliteEvents ----------------------------------------------------------------

    def put(self, record: Record) -> None:
        """Insert or replace the record with this kind and id, durably."""
        self._events.put(record)

    def put_many(self, records: Sequence[Record]) -> None:
        """Insert or replace many records in one durable transaction."""
        self._events.put_many(records)

    def get(self, cls: type[R], record_id: str) -> R | None:
        """The record of kind ``cls`` with this id, or None."""
        return self._events.get(cls, record_id)

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
        """Records of one kind filtered by service, status and ``at`` range; see :meth:`SqliteEvents.find`."""
        return self._events.find(
            cls,
            service=service,
            status=status,
            since=since,
            until=until,
            limit=limit,
            newest_first=newest_first,
        )


if TYPE_CHECKING:

    def _implements_protocols(store: SqliteStore) -> tuple[SampleStore, EventStore]:
        return store, store
