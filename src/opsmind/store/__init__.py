"""Storage: samples (raw + rollups, with retention) and events, behind backend-neutral protocols."""

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

__all__ = [
    "EventStore",
    "HotWindow",
    "MaintenanceReport",
    "RangeResult",
    "Resolution",
    "SampleStore",
    "SeriesInfo",
    "SqliteStore",
    "TooManySeriesError",
]
