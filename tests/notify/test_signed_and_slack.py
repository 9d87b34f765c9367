"""The signed generic webhook and the Slack-compatible notifier, against a real HTTP receiver on loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from opsmind.config import SlackSettings, WebhookSettings
from opsmind.incidents import grouping
from opsmind.notify.slack import SlackNotifier, slack_message
from opsmind.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookNotifier, sign, verify
from opsmind.types import Anomaly


class Capture:
    def __init__(self, status: int = 200) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                capture.requests.append((dict(self.headers.items()), body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def capture() -> Iterator[Capture]:
    c = Capture()
    yield c
    c.server.shutdown()


def incident() -> Any:
    a = Anomaly(at=1, service="gateway", series="m", ts=1, value=9, score=9, probability=0.8, detector="t")
    inc = grouping.open_incident(a, now=1)
    return inc.model_copy(
        update={"root_causes": ({"service": "db", "score": 2.0, "evidence": "cpu rose 9 sd"},)}
    )


async def test_signed_webhook_verifies_and_tampering_fails(capture: Capture) -> None:
    n = WebhookNotifier(WebhookSettings(url=capture.url, secret="s3cret"))
    assert (await n.notify("opened", incident())).ok
    await n.aclose()
    ((headers, body),) = capture.requests
    assert headers[SIGNATURE_HEADER].startswith("sha256=") and headers[TIMESTAMP_HEADER].isdigit()
    assert json.loads(body)["event"] == "opened"
    hdrs = {SIGNATURE_HEADER: headers[SIGNATURE_HEADER], TIMESTAMP_HEADER: headers[TIMESTAMP_HEADER]}
    now = time.time()
    assert verify("s3cret", body, hdrs, now)
    assert not verify("wrong", body, hdrs, now)
    assert not verify("s3cret", body + b" ", hdrs, now)
    assert not verify("s3cret", body, hdrs, now + 3600)  # a replay an hour later
    assert verify("k", b"x", sign("k", b"x", 100.0), 100.0)


async def test_unsigned_webhook_sends_no_signature(capture: Capture) -> None:
    n = WebhookNotifier(WebhookSettings(url=capture.url))
    assert (await n.notify("resolved", incident())).ok
    await n.aclose()
    assert SIGNATURE_HEADER not in capture.requests[0][0]


async def test_slack_message_with_root_cause(capture: Capture) -> None:
    n = SlackNotifier(SlackSettings(url=capture.url))
    assert (await n.notify("opened", incident())).ok
    await n.aclose()
    msg = json.loads(capture.requests[0][1])
    assert "*OPENED*" in msg["text"] and "Likely root cause: *db*" in msg["text"]
    assert msg["blocks"][0]["text"]["type"] == "mrkdwn"
    assert "RESOLVED" in slack_message("resolved", incident())["text"]


async def test_slack_refusal_is_not_retried_but_an_outage_is() -> None:
    bad = Capture(status=400)
    down = Capture(status=503)
    try:
        r1 = await SlackNotifier(SlackSettings(url=bad.url)).notify("opened", incident())
        r2 = await SlackNotifier(SlackSettings(url=down.url)).notify("opened", incident())
    finally:
        bad.server.shutdown()
        down.server.shutdown()
    assert not r1.ok and not r1.retryable
    assert not r2.ok and r2.retryable
