"""Generic JSON webhook: POST the incident event; a 2xx is success.

Whether a failure is worth retrying follows HTTP semantics: connection errors, timeouts, 408, 429 and
5xx are retryable; any other 4xx means the receiver rejected the payload and a retry would not help.
"""

from __future__ import annotations

import httpx

from opsmind.config import WebhookSettings
from opsmind.notify.base import NotifyResult, incident_payload
from opsmind.types import Incident

RETRYABLE_STATUS = {408, 425, 429}


class WebhookNotifier:
    def __init__(self, settings: WebhookSettings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.name = f"webhook:{settings.url}"
        self._client = client or httpx.AsyncClient(timeout=settings.timeout_s)

    async def notify(self, event: str, incident: Incident) -> NotifyResult:
        try:
            resp = await self._client.post(
                str(self.settings.url), json=incident_payload(event, incident), headers=self.settings.headers
            )
        except httpx.HTTPError as exc:
            return NotifyResult(ok=False, retryable=True, detail=f"{type(exc).__name__}: {exc}")
        if resp.is_success:
            return NotifyResult(ok=True, detail=f"HTTP {resp.status_code}")
        retryable = resp.status_code >= 500 or resp.status_code in RETRYABLE_STATUS
        return NotifyResult(ok=False, retryable=retryable, detail=f"HTTP {resp.status_code}")

    async def aclose(self) -> None:
        await self._client.aclose()
