"""Prometheus Alertmanager as a notification target: incidents become alerts (``POST /api/v2/alerts``).

An incident is one alert, identified by its labels: ``alertname="OpsMindIncident"``, ``incident_id``,
``service`` and ``severity`` (from the incident's highest anomaly probability), plus any ``extra_labels``
from the settings, so Alertmanager's own routing, grouping, inhibition and silences apply to it. An
opened or updated incident is sent firing, with ``endsAt`` ``FIRING_TTL_S`` ahead (Alertmanager resolves
an alert by itself when ``endsAt`` passes, so an OpsMind that dies does not leave alerts firing for ever;
every update pushes it further); a resolved incident is sent with ``endsAt`` = its resolution time, which
resolves it in Alertmanager. When an incident's labels change (its severity grows as worse anomalies
join), Alertmanager sees a new alert; the notifier therefore also sends the label set it sent before,
resolved, so no stale alert stays firing until its ``endsAt``. It remembers the last label set per
incident in memory: after a restart, an older label set expires by its ``endsAt``. Annotations carry the
title, a summary and the top root cause with its evidence.

Retrying follows HTTP semantics, as for the webhook: connection errors, timeouts, 408, 425, 429 and 5xx
are worth a retry; another 4xx means Alertmanager refused the alert (a bad label, say), and retrying the
same alert would not help.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from opsmind.config import AlertmanagerSettings
from opsmind.incidents.muting import incident_labels, severity_of
from opsmind.notify.base import NotifyResult
from opsmind.notify.webhook import post
from opsmind.types import Incident, IncidentStatus

FIRING_TTL_S = 3600.0


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def severity(incident: Incident) -> str:
    return severity_of(incident.max_probability)


def alert_of(incident: Incident, now: float, extra_labels: dict[str, str] | None = None) -> dict[str, Any]:
    """The Alertmanager alert for ``incident`` at ``now`` (see module)."""
    labels = {**(extra_labels or {}), **incident_labels(incident)}
    annotations = {
        "title": incident.title,
        "summary": f"{incident.anomaly_count} anomalies on {len(incident.series)} series",
    }
    if incident.root_causes:
        top = incident.root_causes[0]
        annotations["root_cause"] = f"{top.get('service')}: {top.get('evidence', '')}"
    resolved = incident.status is IncidentStatus.RESOLVED
    end = (incident.resolved_at or now) if resolved else now + FIRING_TTL_S
    return {
        "labels": labels,
        "annotations": annotations,
        "startsAt": _rfc3339(incident.opened_at),
        "endsAt": _rfc3339(max(end, incident.opened_at)),
    }


class AlertmanagerNotifier:
    def __init__(self, settings: AlertmanagerSettings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.name = f"alertmanager:{settings.url}"
        self._url = str(settings.url).rstrip("/") + "/api/v2/alerts"
        self._client = client or httpx.AsyncClient(timeout=settings.timeout_s)
        self._sent: dict[str, dict[str, str]] = {}  # incident id -> the labels Alertmanager has firing

    async def notify(self, event: str, incident: Incident) -> NotifyResult:
        now = datetime.now(UTC).timestamp()
        alert = alert_of(incident, now, self.settings.extra_labels)
        body = [alert]
        before = self._sent.get(incident.id)
        if before is not None and before != alert["labels"]:
            body.append({**alert, "labels": before, "endsAt": _rfc3339(max(now, incident.opened_at))})
        result = await post(self._client, self._url, json=body)
        if result.ok:
            if incident.status is IncidentStatus.RESOLVED:
                self._sent.pop(incident.id, None)
            else:
                self._sent[incident.id] = alert["labels"]
        return result

    async def aclose(self) -> None:
        await self._client.aclose()
