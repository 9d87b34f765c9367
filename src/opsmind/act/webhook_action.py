"""A remediation carried out by someone else's HTTP endpoint: send the action, the incident and the
parameters as JSON (POST unless another method is chosen; the JSON is the body whatever the method); a
2xx means done.

The body is ``{"action", "incident", "params", "idempotency_key", "sent_at"}`` (plus ``remediation``, the
service, remediation id and step, when a runbook step sends it); the idempotency key is
also sent as the ``Idempotency-Key`` header so a receiver can drop a retried duplicate. With a ``secret``
the request is signed exactly as the notification webhook signs (``X-OpsMind-Timestamp`` and
``X-OpsMind-Signature: sha256=<HMAC-SHA256 of "<timestamp>.<body>">``), so one receiver-side check serves
both (:mod:`opsmind.types.signature`, shared by the two senders).

Outcomes follow HTTP semantics, as the notifiers' do: connection errors, timeouts, 408, 425, 429 and 5xx
are worth retrying (with the receiver's ``Retry-After`` in the detail); any other status, a redirect
included (none is followed), is a permanent failure. A dry run (the default) builds and checks the body
and sends nothing. If the receiver answers with JSON holding a string ``revert_token``, the result carries
a token whose revert POSTs ``{"action": "revert", "params": {"revert_token": ...}}`` to the same URL.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from pydantic import BaseModel

from opsmind.act.base import ActionResult, bad_token
from opsmind.types.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign  # noqa: F401 (headers re-exported)

IDEMPOTENCY_HEADER = "Idempotency-Key"
RETRYABLE_STATUS = frozenset({408, 425, 429})
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _incident_json(incident: BaseModel | Mapping[str, Any] | None) -> Any:
    if incident is None:
        return None
    if isinstance(incident, BaseModel):
        return incident.model_dump(mode="json")
    return dict(incident)


class WebhookAction:
    """POST remediation actions to ``url``; synchronous, like the other actuators."""

    def __init__(
        self,
        url: str,
        *,
        secret: str | None = None,
        timeout_s: float = 10.0,
        headers: Mapping[str, str] | None = None,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        method: str = "POST",
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"a webhook action needs an http(s) URL, got {url!r}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.url = url
        self.secret = secret
        self.timeout_s = timeout_s
        self.headers = dict(headers or {})
        self.clock = clock
        self.method = method
        self._client = client or httpx.Client(timeout=timeout_s, follow_redirects=False)

    def close(self) -> None:
        self._client.close()

    def run(
        self,
        action: str,
        incident: BaseModel | Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        dry_run: bool = True,
        *,
        idempotency_key: str | None = None,
        remediation: Mapping[str, Any] | None = None,
    ) -> ActionResult:
        """Send ``action`` for ``incident`` with ``params`` (and, from a runbook step, the ``remediation``
        it belongs to); with ``dry_run`` only check the body."""
        if not action:
            return ActionResult(False, False, "refused: a webhook action needs an action name", None, dry_run)
        key = idempotency_key or uuid.uuid4().hex
        document = {
            "action": action,
            "incident": _incident_json(incident),
            "params": dict(params or {}),
            "idempotency_key": key,
            "sent_at": self.clock(),
        }
        if remediation is not None:
            document["remediation"] = dict(remediation)
        try:
            body = json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            return ActionResult(
                False, False, f"refused: {action} cannot be sent as JSON: {exc}", None, dry_run
            )
        if dry_run:
            return ActionResult(
                True,
                False,
                f"dry run: would {self.method} {action} to {self.url} ({len(body)} bytes); nothing sent",
                None,
                True,
            )
        return self._post(action, body, key)

    def _post(self, action: str, body: bytes, key: str) -> ActionResult:
        headers = {"content-type": "application/json", IDEMPOTENCY_HEADER: key, **self.headers}
        if self.secret is not None:
            headers.update(sign(self.secret, body, self.clock()))
        what = f"{action} via {self.url}"
        try:
            resp = self._client.request(
                self.method, self.url, content=body, headers=headers, timeout=self.timeout_s
            )
        except httpx.HTTPError as exc:
            return ActionResult(False, True, f"{what} failed: {type(exc).__name__}: {exc}", None, False)
        said = resp.text[:200].strip()
        if resp.is_success:
            token = self._token(resp)
            note = "" if token else "; no revert token (the receiver gave none)"
            return ActionResult(True, False, f"{what}: HTTP {resp.status_code}{note}", token, False)
        retryable = resp.status_code >= 500 or resp.status_code in RETRYABLE_STATUS
        detail = f"{what} failed: HTTP {resp.status_code}" + (f": {said}" if said else "")
        if resp.is_redirect:
            detail += f" (redirect to {resp.headers.get('location', '?')} not followed)"
        retry_after = resp.headers.get("retry-after")
        if retryable and retry_after:
            detail += f" (Retry-After {retry_after} s)"
        return ActionResult(False, retryable, detail, None, False)

    def _token(self, resp: httpx.Response) -> str | None:
        try:
            data = resp.json()
        except ValueError:
            return None
        inner = data.get("revert_token") if isinstance(data, dict) else None
        if not isinstance(inner, str) or not inner:
            return None
        return json.dumps({"kind": "webhook", "url": self.url, "token": inner}, sort_keys=True)

    def revert(self, token: str, dry_run: bool = True) -> ActionResult:
        """POST ``revert`` with the receiver's own token; refuses a token minted for another URL."""
        try:
            data = json.loads(token)
        except (TypeError, ValueError):
            return ActionResult(False, False, bad_token(token, ValueError("not JSON")).detail, None, dry_run)
        inner = data.get("token") if isinstance(data, dict) and data.get("kind") == "webhook" else None
        if not isinstance(inner, str):
            return ActionResult(
                False, False, bad_token(token, ValueError("not a webhook token")).detail, None, dry_run
            )
        if data.get("url") != self.url:
            return ActionResult(
                False,
                False,
                f"cannot revert: the token is for {data.get('url')!r}, not {self.url}",
                None,
                dry_run,
            )
        return self.run("revert", None, {"revert_token": inner}, dry_run)
