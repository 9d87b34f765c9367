"""Notify to the log: always available, never fails."""

from __future__ import annotations

import logging

from opsmind.notify.base import NotifyResult, incident_payload
from opsmind.types import Incident

log = logging.getLogger("opsmind.notifications")


class LogNotifier:
    name = "log"

    async def notify(self, event: str, incident: Incident) -> NotifyResult:
        log.warning("incident %s %s: %s", incident.id, event, incident_payload(event, incident)["summary"])
        return NotifyResult(ok=True)
