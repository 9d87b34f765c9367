"""Storage: samples (raw + rollups, with retention) and events, behind backend-neutral protocols.

:class:`PostgresStore` is imported on first use, so that an install on the embedded SQLite store never
loads psycopg.
"""

from typing import TYPE_CHECKING, Any

from opsmind.store.hot_window import HotWindow
from opsmind.store.protocols import (
    EventStore,
    MaintenanceReport,
    RangeResult,
    Resolution,
    SampleStore,
    SeriesInfo,
    TooManySeriesError,
)
from opsmind.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from opsmind.store.postgres import PostgresStore

__all__ = [
    "EventStore",
    "HotWindow",
    "MaintenanceReport",
    "PostgresStore",
    "RangeResult",
    "Resolution",
    "SampleStore",
    "SeriesInfo",
    "SqliteStore",
    "TooManySeriesError",
]


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":
        from opsmind.store.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
