"""The core data model: series identity and the typed, immutable records the engine passes around."""

from opsmind.types.records import (
    Action,
    ActionStatus,
    Anomaly,
    AuditEntry,
    Decision,
    Event,
    Feedback,
    Incident,
    IncidentStatus,
    Record,
    Sample,
    SeriesSamples,
    Silence,
    WarningModel,
    anomaly_id,
    new_id,
)
from opsmind.types.series import (
    InvalidSeriesError,
    Series,
    validate_label_name,
    validate_metric_name,
)

__all__ = [
    "Action",
    "ActionStatus",
    "Anomaly",
    "AuditEntry",
    "Decision",
    "Event",
    "Feedback",
    "Incident",
    "IncidentStatus",
    "InvalidSeriesError",
    "Record",
    "Sample",
    "anomaly_id",
    "Series",
    "Silence",
    "SeriesSamples",
    "WarningModel",
    "new_id",
    "validate_label_name",
    "validate_metric_name",
]
