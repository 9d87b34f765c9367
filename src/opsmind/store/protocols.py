"""Storage contracts. The embedded backend is SQLite; a PostgreSQL backend implements the same
protocols without callers changing. Methods are synchronous: the async engine calls them through
``asyncio.to_thread`` where a call may block, and both SQLite and psycopg are synchronous libraries.

Every write method is durable when it returns: an acknowledged write survives ``kill -9``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from opsmind.config import StorageSettings
from opsmind.types import Record, Series, SeriesSamples

Resolution = Literal["raw", "1m", "1h", "auto"]
R = TypeVar("R", bound=Record)


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    series: Series
    first_ts: float | None
    last_ts: float | None


@dataclass(frozen=True, slots=True)
class RangeResult:
    """Points of one series over a range. For rollups ``values`` is the mean of each bucket and
    ``minimums``/``maximums``/``counts`` describe the bucket; for raw data those three are empty."""

    series: Series
    resolution: Literal["raw", "1m", "1h"]
    timestamps: list[float]
    values: list[float]
    minimums: list[float] = field(default_factory=list)
    maximums: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def merge_raw(
    series: Series, stored: Sequence[tuple[int, float | None]], head: Mapping[int, float | None] | None
) -> RangeResult:
    """A raw range from the rows of ``samples`` and those still in ``head`` (which win at the same
    timestamp, as in the single-series query: the newer write)."""
    if not head:
        return raw_result(series, stored)
    points = dict(stored)
    points.update(head)
    return raw_result(series, sorted(points.items()))


def raw_result(series: Series, rows: Sequence[tuple[int, float | None]]) -> RangeResult:
    """A raw range from ``(ts_ms, value)`` rows as both SQL backends read them (NaN is stored as NULL)."""
    return RangeResult(series, "raw", [t / 1000.0 for t, _ in rows], [_nan(v) for _, v in rows])


def rollup_result(
    series: Series, resolution: Literal["1m", "1h"], rows: Sequence[Sequence[Any]]
) -> RangeResult:
    """A rollup range from ``(bucket_ms, count, sum, min, max)`` rows as both SQL backends read them: the
    value is the bucket's mean (NaN where its sum is not a number)."""
    return RangeResult(
        series,
        resolution,
        timestamps=[r[0] / 1000.0 for r in rows],
        values=[r[2] / r[1] if r[1] and r[2] is not None else float("nan") for r in rows],
        minimums=[_nan(r[3]) for r in rows],
        maximums=[_nan(r[4]) for r in rows],
        counts=[r[1] for r in rows],
    )


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    rolled_up_minutes: int
    rolled_up_hours: int
    deleted_raw: int
    deleted_minutes: int
    deleted_hours: int


def finest_resolution(
    start: float, newest_ms: int | None, maintained_ms: int | None, settings: StorageSettings
) -> Literal["raw", "1m", "1h"]:
    """The finest resolution whose retention still covers ``start`` (what ``auto`` means).

    "Now" is the newest stored timestamp or the time of the last maintenance, whichever is later, not the
    wall clock: a store fed with simulated or replayed time then chooses the same way as a live one. An
    empty, never maintained store uses ``time.time()``."""
    refs = [r for r in (newest_ms, maintained_ms) if r is not None]
    now = max(refs) / 1000.0 if refs else time.time()
    if start >= now - settings.raw_retention_s:
        return "raw"
    if start >= now - settings.minute_retention_s:
        return "1m"
    return "1h"


class TooManySeriesError(RuntimeError):
    """Accepting the batch would exceed the store's active-series limit; nothing was written."""


class SampleStore(Protocol):
    def append(self, batch: Sequence[SeriesSamples]) -> int:
        """Store all points of ``batch`` atomically (all or nothing) and durably; return the count.

        A point with the same series and timestamp as a stored one replaces it (last write wins)."""
        ...

    def series(self, matchers: Mapping[str, str] | None = None, limit: int = 1000) -> list[SeriesInfo]:
        """Series whose labels equal every matcher (``__name__`` matches the metric name)."""
        ...

    def series_count(self) -> int: ...

    def query(self, series: Series, start: float, end: float, resolution: Resolution = "auto") -> RangeResult:
        """Points with ``start <= ts <= end``, oldest first. ``auto`` picks the finest resolution whose
        retention still covers ``start``."""
        ...

    def query_raw_many(self, series: Sequence[Series], start: float, end: float) -> list[RangeResult]:
        """``query(s, start, end, "raw")`` for each of ``series``, in order, in one pass over the newest
        points (a reader of a whole fleet, such as the health scores of every service, would otherwise
        scan them once per series)."""
        ...

    def maintain(self, now: float) -> MaintenanceReport:
        """Roll raw points up into complete 1-minute and 1-hour buckets, then apply retention."""
        ...

    def close(self) -> None: ...


class EventStore(Protocol):
    def put(self, record: Record) -> None:
        """Insert or replace the record with this kind and id, durably."""
        ...

    def put_many(self, records: Sequence[Record]) -> None:
        """Insert or replace many records in one durable transaction (all or none)."""
        ...

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
    ) -> list[R]:
        """Records of one kind filtered by service, status and ``at`` range, newest first unless
        ``newest_first`` is false. Named ``find``, not ``query``, so that one class can implement both
        protocols: :meth:`SampleStore.query` reads a range of samples."""
        ...

    def close(self) -> None: ...


class Store(SampleStore, EventStore, Protocol):
    """Both halves in one object, as every backend provides them (the engine holds one of these)."""

    def close(self) -> None: ...
