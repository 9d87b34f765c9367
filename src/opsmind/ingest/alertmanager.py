"""External alerts in: Alertmanager's webhook (payload version 4) turned into anomalies.

Alertmanager POSTs ``{"version": "4", "status", "receiver", "groupLabels", "commonLabels", ...,
"alerts": [{"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}]}``.
Only ``alerts`` with ``labels`` are required; every other field may be missing, and fields this version
does not know (newer Alertmanagers add some, e.g. ``truncatedAlerts``) are ignored, and ``version`` is
not enforced (every Alertmanager so far sends "4"), so a receiver configured on any Alertmanager works.

A *firing* alert becomes an :class:`~opsmind.types.Anomaly` that enters the same pipeline as OpsMind's
own: its series is Prometheus' representation of an alert, ``ALERTS{alertname="...", ...}`` (all the
alert's labels), its service the ``service`` label (else ``job``, else ``namespace``, else
``external``), its time ``startsAt`` (else when it arrived) and its probability follows the
``severity`` label (critical 0.999999, warning 0.9999, anything else 0.999). The anomaly id derives from
the labels and ``startsAt``, so Alertmanager's repeated notifications of one alert are one anomaly.
Such an anomaly opens an incident on its own (Alertmanager already held it for its rule's ``for:``;
see :mod:`opsmind.incidents.correlator`). A *resolved* alert becomes the id its firing anomaly had
(computed the same way), so the incident stage stops holding that alert's incident open
(:mod:`opsmind.incidents.firing`); the incident then resolves when its signals stay quiet, as every
incident does. A resolved alert whose labels or ``startsAt`` could not make an anomaly is only counted:
its firing notifications were refused the same way, so there is nothing it could match, and refusing
the batch for it would lose the other alerts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from opsmind.ingest.errors import IngestError
from opsmind.types import Anomaly, InvalidSeriesError, Series, anomaly_id

DETECTOR = "alertmanager"
SEVERITY_PROBABILITY = {"critical": 0.999999, "page": 0.999999, "error": 0.9999, "warning": 0.9999}
DEFAULT_PROBABILITY = 0.999
MAX_ALERTS = 10_000


class AmAlert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: str = "firing"
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str | None = None  # noqa: N815 - Alertmanager's field name
    endsAt: str | None = None  # noqa: N815
    fingerprint: str | None = None

    @field_validator("status")
    @classmethod
    def _status(cls, v: str) -> str:
        if v not in ("firing", "resolved"):
            raise ValueError("must be 'firing' or 'resolved'")
        return v


class AmWebhook(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: str | None = None
    status: str | None = None
    receiver: str | None = None
    groupKey: str | None = None  # noqa: N815
    alerts: list[AmAlert] = Field(max_length=MAX_ALERTS)


def _time(text: str | None, fallback: float, where: str) -> float:
    if not text or text.startswith("0001-01-01"):  # Go's zero time: not set
        return fallback
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise IngestError(f"{where}: {text!r} is not an RFC 3339 time", status=422) from exc
    if not math.isfinite(ts):
        raise IngestError(f"{where}: {text!r} is not a usable time", status=422)
    return ts


def service_of(labels: dict[str, str]) -> str:
    return labels.get("service") or labels.get("job") or labels.get("namespace") or "external"


@dataclass(frozen=True, slots=True)
class Notification:
    """What one webhook body says: the anomalies of its firing alerts, the anomaly ids of its resolved
    ones (as their firing notifications made them), and how many alerts were resolved in all (some may
    have no id, see the module's docstring)."""

    firing: list[Anomaly]
    resolved: list[str]
    resolved_total: int


def _identity(alert: AmAlert, now: float, future_grace_s: float, where: str) -> tuple[Series, float]:
    """The series and start an alert's anomaly is known by: one function for firing and resolved alerts,
    so a resolved notification names exactly the anomaly its firing ones made. IngestError (422): none."""
    ts = _time(alert.startsAt, now, f"{where}.startsAt")
    if ts > now + future_grace_s:
        ts = now
    try:
        series = Series.of("ALERTS", alert.labels)
    except InvalidSeriesError as exc:
        raise IngestError(f"{where}.labels: {exc}", status=422) from exc
    return series, ts


def parse(body: Any, now: float, future_grace_s: float = 600.0) -> Notification:
    """The anomalies of a webhook body's firing alerts and the resolved ones; raises
    :class:`IngestError` (422) naming the first problem and accepting nothing. A ``startsAt`` more than
    ``future_grace_s`` after ``now`` (a sender's clock that is off) is taken as ``now``: the alert is
    firing now, whatever its sender's clock says, and refusing it would lose the batch's other alerts."""
    if body is not None and isinstance(body, dict) and body.get("version") not in (None, "4", 4):
        raise IngestError(
            f"version: {body.get('version')!r} is not a webhook version this receiver reads (4)", 422
        )
    try:
        hook = AmWebhook.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "(body)"
        raise IngestError(f"{where}: {first['msg']}", status=422) from exc
    out: list[Anomaly] = []
    resolved: list[str] = []
    resolved_total = 0
    for i, alert in enumerate(hook.alerts):
        where = f"alerts.{i}"
        if alert.status == "resolved":
            resolved_total += 1
            try:
                series, ts = _identity(alert, now, future_grace_s, where)
            except IngestError:
                continue  # nothing firing can have this id: its firing was refused for the same reason
            resolved.append(anomaly_id(series.key, ts, DETECTOR))
            continue
        series, ts = _identity(alert, now, future_grace_s, where)
        severity = alert.labels.get("severity", "").lower()
        out.append(
            Anomaly(
                id=anomaly_id(series.key, ts, DETECTOR),
                at=now,
                service=service_of(alert.labels),
                series=series.key,
                ts=ts,
                value=1.0,
                expected=None,
                score=1.0,
                probability=SEVERITY_PROBABILITY.get(severity, DEFAULT_PROBABILITY),
                detector=DETECTOR,
            )
        )
    return Notification(out, resolved, resolved_total)
