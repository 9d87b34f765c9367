"""A store made of two parts: one that keeps samples and one that keeps records.

Each backend writes its :class:`~opsmind.store.protocols.SampleStore` half and its
:class:`~opsmind.store.protocols.EventStore` half as separate classes over one database (SQLite's in
``sqlite_samples``/``sqlite_events``, PostgreSQL's in ``postgres_samples``/``postgres_events``);
:class:`ComposedStore` hands each protocol call to the right half, so the backends' store classes, and
the engine's :class:`~opsmind.engine.live.ObservedStore` around any of them, only add what is theirs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Protocol, Self

from opsmind.store.protocols import MaintenanceReport, R, RangeResult, Resolution, SeriesInfo
from opsmind.types import Record, Series, SeriesSamples


class SamplesPart(Protocol):
    """What :class:`ComposedStore` asks of its samples half (the SampleStore protocol but ``close``)."""

    def append(self, batch: Sequence[SeriesSamples]) -> int: ...
    def series_count(self) -> int: ...
    def series(self, matchers: Mapping[str, str] | None = None, limit: int = 1000) -> list[SeriesInfo]: ...
    def query(
        self, series: Series, start: float, end: float, resolution: Resolution = "auto"
    ) -> RangeResult: ...
    def query_raw_many(self, series: Sequence[Series], start: float, end: float) -> list[RangeResult]: ...
    def maintain(self, now: float) -> MaintenanceReport: ...


class EventsPart(Protocol):
    """What :class:`ComposedStore` asks of its events half (the EventStore protocol but ``close``)."""

    def put(self, record: Record) -> None: ...
    def put_many(self, records: Sequence[Record]) -> None: ...
    def get(self, cls: type[R], record_id: str) -> R | None: ...
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
    ) -> list[R]: ...


class ComposedStore(ABC):
    """Both storage protocols, each call handed to ``samples`` or ``events`` (see the protocols in
    :mod:`opsmind.store.protocols` for what each method promises). Subclasses add ``close``."""

    def __init__(self, samples: SamplesPart, events: EventsPart) -> None:
        self._samples = samples
        self._events = events

    @abstractmethod
    def close(self) -> None:
        """Release the backend's connections; closing twice is harmless."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- SampleStore --

    def append(self, batch: Sequence[SeriesSamples]) -> int:
        """Store every point of ``batch`` in one durable transaction; return the count."""
        return self._samples.append(batch)

    def series_count(self) -> int:
        """The number of series stored."""
        return self._samples.series_count()

    def series(self, matchers: Mapping[str, str] | None = None, limit: int = 1000) -> list[SeriesInfo]:
        """Series whose labels equal every matcher (``__name__``: the metric name)."""
        return self._samples.series(matchers, limit)

    def query(self, series: Series, start: float, end: float, resolution: Resolution = "auto") -> RangeResult:
        """Points of ``series`` with ``start <= ts <= end``, oldest first."""
        return self._samples.query(series, start, end, resolution)

    def query_raw_many(self, series: Sequence[Series], start: float, end: float) -> list[RangeResult]:
        """Raw points of each of ``series`` with ``start <= ts <= end``, in one pass over the newest."""
        return self._samples.query_raw_many(series, start, end)

    def maintain(self, now: float) -> MaintenanceReport:
        """Roll up, compact and apply retention."""
        return self._samples.maintain(now)

    # -- EventStore --

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
        """Records of one kind filtered by service, status and ``at`` range, newest first unless
        ``newest_first`` is false."""
        return self._events.find(
            cls,
            service=service,
            status=status,
            since=since,
            until=until,
            limit=limit,
            newest_first=newest_first,
        )
