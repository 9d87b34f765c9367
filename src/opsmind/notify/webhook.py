"""Generic JSON webhook: POST the incident event; a 2xx is success.

Whether a failure is worth retrying follows HTTP semantics: connection errors, timeouts, 408, 429 and
5xx are retryable; any other 4xx means the receiver rejected the payload and a retry would not help.

With a ``secret`` every request is signed so the receiver can tell it came from OpsMind and was not
replayed: ``X-OpsMind-Timestamp`` (Unix seconds) and ``X-OpsMind-Signature: sha256=<hex>``, the
HMAC-SHA256 under the secret of ``"<timestamp>.<body>"`` (the exact bytes sent). A receiver recomputes
it, compares in constant time and rejects old timestamps (:func:`verify` does both).
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from opsmind.config import WebhookSettings
from opsmind.notify.base import NotifyResult, incident_payload
from opsmind.types import Incident
from opsmind.types.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify  # noqa: F401 (re-exported)

RETRYABLE_STATUS = {408, 425, 429}


async def post(client: httpx.AsyncClient, url: str, **request: Any) -> NotifyResult:
    """POST and judge the outcome by HTTP semantics (see module): what every HTTP notifier returns."""
    try:
        resp = await client.post(url, **request)
    except httpx.HTTPError as exc:
        return NotifyResult(ok=False, retryable=True, detail=f"{type(exc).__name__}: {exc}")
    if resp.is_success:
        return NotifyResult(ok=True, detail=f"HTTP {resp.status_code}")
    retryable = resp.status_code >= 500 or resp.status_code in RETRYABLE_STATUS
    said = resp.text[:200].strip()
    detail = f"HTTP {resp.status_code}: {said}" if said else f"HTTP {resp.status_code}"
    return NotifyResult(ok=False, retryable=retryable, detail=detail)


class WebhookNotifier:
    def __init__(self, settings: WebhookSettings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.name = f"webhook:{settings.url}"
        self._client = client or httpx.AsyncClient(timeout=settings.timeout_s)

    async def notify(self, event: str, incident: Incident) -> NotifyResult:
        body = json.dumps(incident_payload(event, incident), separators=(",", ":")).encode()
        headers = {"content-type": "application/json", **self.settings.headers}
        if self.settings.secret is not None:
            headers.update(sign(self.settings.secret.get_secret_value(), body, time.time()))
        return await post(self._client, str(self.settings.url), content=body, headers=headers)

    async def aclose(self) -> None:
        await self._client.aclose()
