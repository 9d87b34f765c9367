"""Pure incident grouping: which incident an anomaly joins, and when an incident resolves.

Decisions are pure functions returning a value and a reason (DESIGN.md); the stage holds the state.
"""

from __future__ import annotations

from opsmind.types import Anomaly, Incident, IncidentStatus

UNLABELLED_SERVICE = "unlabelled"

TIMELINE_LIMIT = 200  # keep an incident's record bounded; counts stay exact


def service_of(anomaly: Anomaly) -> str:
    return anomaly.service or UNLABELLED_SERVICE


def joins(incident: Incident | None, anomaly: Anomaly, group_window_s: float) -> tuple[bool, str]:
    """Whether ``anomaly`` belongs to the open ``incident`` of its service, and why."""
    if incident is None or incident.status is not IncidentStatus.OPEN:
        return False, "no open incident for the service"
    gap = anomaly.ts - incident.last_anomaly_at
    if gap > group_window_s:
        return False, f"{gap:.0f}s after the incident's last anomaly, beyond the {group_window_s:.0f}s window"
    return True, f"within {group_window_s:.0f}s of the incident's last anomaly"


def within_window(pending: list[Anomaly], group_window_s: float) -> list[Anomaly]:
    """The pending anomalies (oldest first) that lie within the group window before the newest one."""
    return [a for a in pending if pending[-1].ts - a.ts <= group_window_s] if pending else []


def pending_enough(recent: list[Anomaly], min_anomalies: int, group_window_s: float) -> tuple[bool, str]:
    """Whether a service's not-yet-grouped anomalies (from :func:`within_window`) justify opening an
    incident, and why. Like the ``for:`` clause of a Prometheus alerting rule: one stray point does not
    page anyone; the anomalies must repeat within the group window."""
    if len(recent) >= min_anomalies:
        return True, f"{len(recent)} anomalies within {group_window_s:.0f}s (at least {min_anomalies})"
    return False, f"{len(recent)} of {min_anomalies} anomalies needed within {group_window_s:.0f}s"


def open_incident(anomaly: Anomaly, now: float) -> Incident:
    svc = service_of(anomaly)
    return Incident(
        at=now,
        service=svc,
        title=f"Anomalous behaviour on {svc}",
        opened_at=anomaly.ts,
        last_anomaly_at=anomaly.ts,
        anomaly_count=1,
        series=(anomaly.series,),
        max_probability=anomaly.probability,
        timeline=(
            {
                "at": now,
                "event": "opened",
                "anomaly": anomaly.id,
                "series": anomaly.series,
                "value": anomaly.value,
                "expected": anomaly.expected,
            },
        ),
    )


def add_anomaly(incident: Incident, anomaly: Anomaly, now: float) -> Incident:
    series = incident.series if anomaly.series in incident.series else (*incident.series, anomaly.series)
    timeline = incident.timeline
    if len(timeline) < TIMELINE_LIMIT:
        timeline = (
            *timeline,
            {
                "at": now,
                "event": "anomaly",
                "anomaly": anomaly.id,
                "series": anomaly.series,
                "value": anomaly.value,
                "expected": anomaly.expected,
            },
        )
    return incident.model_copy(
        update={
            "at": now,
            "last_anomaly_at": max(incident.last_anomaly_at, anomaly.ts),
            "anomaly_count": incident.anomaly_count + 1,
            "series": series,
            "max_probability": max(incident.max_probability, anomaly.probability),
            "timeline": timeline,
        }
    )


def should_resolve(incident: Incident, now: float, resolve_after_s: float) -> tuple[bool, str]:
    quiet = now - incident.last_anomaly_at
    if incident.status is IncidentStatus.OPEN and quiet >= resolve_after_s:
        return True, f"no anomaly for {quiet:.0f}s (resolve after {resolve_after_s:.0f}s)"
    return False, "still within the quiet period"


def resolve(incident: Incident, now: float, reason: str) -> Incident:
    return incident.model_copy(
        update={
            "at": now,
            "status": IncidentStatus.RESOLVED,
            "resolved_at": now,
            "timeline": (*incident.timeline, {"at": now, "event": "resolved", "reason": reason}),
        }
    )
