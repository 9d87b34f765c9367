"""Slack-compatible incoming webhook: a short message per opened or resolved incident.

The body is Slack's ``{"text": ..., "blocks": [...]}`` (Mattermost, Rocket.Chat and Teams' Slack
connectors take the same): a headline with the state, service and title, then the size of the incident
and its top root cause with the evidence. Retry semantics are the webhook's (HTTP status based).
"""

from __future__ import annotations

from typing import Any

import httpx

from opsmind.config import SlackSettings
from opsmind.notify.base import NotifyResult
from opsmind.notify.webhook import post
from opsmind.types import Incident

ICONS = {"opened": ":rotating_light:", "resolved": ":white_check_mark:"}


def slack_message(event: str, incident: Incident) -> dict[str, Any]:
    headline = f"{ICONS.get(event, ':information_source:')} *{event.upper()}* {incident.title}"
    details = f"{incident.anomaly_count} anomalies on {len(incident.series)} series (incident {incident.id})"
    lines = [headline, details]
    if incident.root_causes:
        top = incident.root_causes[0]
        lines.append(f"Likely root cause: *{top.get('service')}* - {top.get('evidence', '')}")
    text = "\n".join(lines)
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


class SlackNotifier:
    def __init__(self, settings: SlackSettings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.name = f"slack:{settings.url.host}"
        self._client = client or httpx.AsyncClient(timeout=settings.timeout_s)

    async def notify(self, event: str, incident: Incident) -> NotifyResult:
        return await post(self._client, str(self.settings.url), json=slack_message(event, incident))

    async def aclose(self) -> None:
        await self._client.aclose()
