"""The notifier contract: deliver one incident event, say whether a retry makes sense."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from opsmind.types import Incident


@dataclass(frozen=True, slots=True)
class NotifyResult:
    ok: bool
    retryable: bool = False
    detail: str = ""


class Notifier(Protocol):
    name: str

    async def notify(self, event: str, incident: Incident) -> NotifyResult: ...


def incident_payload(event: str, incident: Incident) -> dict[str, Any]:
    """The JSON document every notifier sends: the event name and the incident as the API shows it."""
    return {
        "event": event,
        "incident": incident.model_dump(mode="json"),
        "summary": f"[{incident.status.value.upper()}] {incident.title} "
        f"({incident.anomaly_count} anomalies on {len(incident.series)} series)",
    }
