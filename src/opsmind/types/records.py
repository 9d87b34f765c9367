"""Typed, immutable records: what flows between stages and what the EventStore keeps.

Samples travel in bulk as :class:`SeriesSamples` (one series, many points) because ingestion handles
hundreds of thousands of points per second; every other record is a frozen pydantic model so it has one
JSON form for the bus, the store and the API.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from opsmind.types.series import Series


def new_id() -> str:
    """A sortable-enough unique id (random UUID4 hex) for records created by the engine."""
    return uuid.uuid4().hex


def anomaly_id(series_key: str, ts: float, detector: str) -> str:
    """The id of an anomaly, derived from what it is about, so a redelivered input makes the same record."""
    return hashlib.blake2b(f"{detector}|{series_key}|{ts!r}".encode(), digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class Sample:
    """One point of one series; ``ts`` is Unix time in seconds."""

    series: Series
    ts: float
    value: float


@dataclass(frozen=True, slots=True)
class SeriesSamples:
    """Many points of one series, timestamps in seconds, in the order they were received."""

    series: Series
    timestamps: tuple[float, ...]
    values: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.timestamps)


class Record(BaseModel):
    """Base of every stored record. ``kind`` names its table-like family in the EventStore."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: ClassVar[str] = "record"

    id: str = Field(default_factory=new_id)
    at: float = Field(description="when the record was created or last changed, Unix seconds")
    service: str | None = None

    @property
    def status_value(self) -> str | None:
        """The status column the EventStore indexes, if this kind has one."""
        status = getattr(self, "status", None)
        return None if status is None else str(status)


class Anomaly(Record):
    """A point that a detector found unusual."""

    kind: ClassVar[str] = "anomaly"

    series: str = Field(description='canonical series key, e.g. latency_seconds{service="gateway"}')
    ts: float = Field(description="timestamp of the anomalous sample, Unix seconds")
    value: float
    expected: float | None = None
    score: float = Field(description="raw detector score; higher is more anomalous")
    probability: float = Field(ge=0.0, le=1.0)
    detector: str
    type: Literal["anomaly", "prediction"] = Field(
        "anomaly",
        description="'anomaly': a detector saw it; 'prediction': a warning of a breach expected ahead",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="a prediction's figures: warning, lead_s, expected_at, ..."
    )
    evidence: str = ""


class IncidentStatus(StrEnum):
    """open -> acknowledged (a person owns it) -> mitigating (a fix is under way) -> resolved; a resolved
    incident whose signals relapse within the reopen window goes back to open."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    MITIGATING = "mitigating"
    RESOLVED = "resolved"

    @property
    def active(self) -> bool:
        return self is not IncidentStatus.RESOLVED


class Incident(Record):
    """A group of related anomalies, on one service or on services that call each other, with a
    lifecycle. ``service`` is the service it is filed under (the likeliest root cause when known, else
    the first service to show anomalies); ``services`` every service with an anomaly in it."""

    kind: ClassVar[str] = "incident"

    title: str
    status: IncidentStatus = IncidentStatus.OPEN
    opened_at: float
    last_anomaly_at: float
    resolved_at: float | None = None
    anomaly_count: int = 0
    series: tuple[str, ...] = ()
    max_probability: float = 0.0
    timeline: tuple[dict[str, Any], ...] = ()
    root_causes: tuple[dict[str, Any], ...] = Field(
        default=(), description="likely root-cause services, best first: {service, score, evidence}"
    )
    services: tuple[str, ...] = Field(default=(), description="every service with an anomaly in it")
    priority: float = Field(0.0, description="0-100, higher first; see priority_explanation")
    priority_explanation: dict[str, Any] = Field(default_factory=dict)
    reopened: int = Field(0, description="times it relapsed after resolving and was reopened")
    flapping: bool = Field(False, description="it keeps resolving and relapsing; notifications are held")
    type: Literal["anomaly", "prediction"] = Field(
        "anomaly", description="'prediction': opened ahead of an expected breach, from predictions only"
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="a prediction incident's warning, lead_s, first_lead_s and expected_at (latest warning)",
    )


class ActionStatus(StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    EXECUTING = "executing"
    VERIFYING = "verifying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


class Action(Record):
    """Something the engine (or a person) does to the fleet: scale, restart, roll back, notify."""

    kind: ClassVar[str] = "action"

    name: str
    target: str
    params: dict[str, Any] = Field(default_factory=dict)
    status: ActionStatus = ActionStatus.PROPOSED
    incident_id: str | None = None
    reason: str = ""


class Decision(Record):
    """The output of a pure decision function: a value and the reason chain that produced it."""

    kind: ClassVar[str] = "decision"

    name: str
    value: Any
    reasons: tuple[str, ...] = ()


class Event(Record):
    """Something the platform reported: a deployment, a restart, an OOM kill, a scaling step, a config
    change. Shaped like a Kubernetes event: a short machine-readable ``reason`` and a human ``message``."""

    kind: ClassVar[str] = "event"

    reason: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")
    message: str = Field(default="", max_length=4096)
    pod: str | None = None
    node: str | None = None
    source: str = "push"


class AuditEntry(Record):
    """Who or what did what, why, with which evidence."""

    kind: ClassVar[str] = "audit"

    actor: str
    verb: str
    subject: str
    detail: dict[str, Any] = Field(default_factory=dict)


class Silence(Record):
    """Notifications muted for a while for everything whose labels match, as in Alertmanager.

    Each matcher is ``{"name", "value", "isRegex", "isEqual"}`` (Alertmanager's API v2 shape); a regex
    matches the whole label value. A silence is ``pending`` before ``starts_at``, ``active`` until
    ``ends_at`` and ``expired`` after; expiring one early sets ``ends_at`` to now."""

    kind: ClassVar[str] = "silence"

    matchers: tuple[dict[str, Any], ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str = ""

    def state(self, now: float) -> str:
        return "pending" if now < self.starts_at else "active" if now < self.ends_at else "expired"


class Feedback(Record):
    """An operator's verdict on an incident: ``noise`` (it should not have paged anyone) or
    ``actionable``. ``features`` is a snapshot of the incident's features when the verdict was given, so
    a model trained on feedback does not change when the incident changes later; ``service`` is the
    incident's service, so feedback can be filtered like the incidents it is about."""

    kind: ClassVar[str] = "feedback"

    incident_id: str
    verdict: Literal["noise", "actionable"]
    by: str
    comment: str = ""
    features: dict[str, float] = Field(
        default_factory=dict, description="the incident's features at the time, see incidents/feedback.py"
    )


class FiringAlert(Record):
    """An external alert's latest notification (see incidents/firing.py): ``id`` is the alert's anomaly id,
    ``at`` when it was last notified, ``status`` firing or resolved. Kept so that a restarted engine
    still holds open the incidents of the alerts that fire."""

    kind: ClassVar[str] = "firing_alert"

    status: Literal["firing", "resolved"]
    series: str = ""


class WarningModel(Record):
    """The fitted parameters of one service's learned warning rule (see predict/warning_learner.py), saved
    on every refit so that a restarted engine warns with it at once instead of relearning for half a day.
    ``id`` is ``<service>/<warning kind>``."""

    kind: ClassVar[str] = "warning_model"

    warning: str
    params: dict[str, Any] = Field(description="WarningLearner.export_model(): feature names and weights")


# What a registered service may be called and be (the registry's API and Kubernetes discovery check both).
SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
ServiceType = Literal["api", "ml", "worker", "database", "cache"]
SERVICE_TYPES: frozenset[str] = frozenset(get_args(ServiceType))


class ServiceRegistration(Record):
    """A service made known to OpsMind by a person or a tool, not only by the labels of its series: what
    it is, who owns it, and where its metrics are, which OpsMind then scrapes (labelled
    ``service=<name>``). ``id`` and ``service`` are the service's name; deregistering keeps the record
    with ``status`` ``removed`` (the store keeps history, never deletes)."""

    kind: ClassVar[str] = "service_registration"

    status: Literal["registered", "removed"] = "registered"
    service_type: ServiceType | None = None
    owner: str = ""
    metrics_url: str | None = None
    scrape_interval_s: float = 15.0
    labels: dict[str, str] = Field(default_factory=dict, description="added to every scraped series")
    depends_on: tuple[str, ...] = Field(
        (), description="the services it calls: edges of the call graph while it is registered"
    )
    by: str = Field(description="who registered or last changed it")
